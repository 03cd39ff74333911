from django.apps import AppConfig


class DbConfig(AppConfig):
    """The data layer and the stores' clients: migrations, named SQL, Lua scripts, the
    PostgreSQL pools and the Valkey client, and the small helpers they share."""

    name = "db"
    label = "feedapp_db"
