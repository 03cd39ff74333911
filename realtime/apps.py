from django.apps import AppConfig


class RealtimeConfig(AppConfig):
    """Live counts: the SSE stream, the WebSocket route and the per-process hub."""

    name = "realtime"

    def ready(self) -> None:
        from polls.signals import poll_deleted
        from realtime.hub import end_deleted_poll_streams

        poll_deleted.connect(end_deleted_poll_streams, dispatch_uid="realtime.end_streams")
