from django.apps import AppConfig


class VotesConfig(AppConfig):
    """Votes: submission, the consumer and counts."""

    name = "votes"

    def ready(self) -> None:
        from polls.events import on_poll_deleted
        from votes.counts import forget_counts

        # A deleted poll's cached counts go with it (after the deletion committed).
        on_poll_deleted(forget_counts)
