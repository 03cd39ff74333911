from django.apps import AppConfig


class DbConfig(AppConfig):
    """The SQL layer: migrations, named queries, pools and the `dbmate` command."""

    name = "db"
    label = "feedapp_db"
