from django.apps import AppConfig


class RealtimeConfig(AppConfig):
    """Live counts: the SSE stream, the WebSocket route and the per-process hub."""

    name = "realtime"

    def ready(self) -> None:
        from polls.events import on_poll_deleted
        from realtime.hub import announce_poll_deleted

        # Streams of a deleted poll, in every process, say so and end.
        on_poll_deleted(announce_poll_deleted)
