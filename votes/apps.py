from django.apps import AppConfig


class VotesConfig(AppConfig):
    """Votes: submission, the consumer and counts."""

    name = "votes"

    def ready(self) -> None:
        from polls.signals import poll_deleted
        from votes.counts import forget_deleted_poll_counts

        poll_deleted.connect(forget_deleted_poll_counts, dispatch_uid="votes.forget_counts")
