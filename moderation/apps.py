from django.apps import AppConfig


class ModerationConfig(AppConfig):
    """Reports of polls by users, and the review queue where moderators resolve them."""

    name = "moderation"
