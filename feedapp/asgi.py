"""The ASGI entry point, routed by channels: HTTP through Django, the live counts WebSocket,
and the lifespan protocol (which ends live streams on shutdown)."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "feedapp.settings")
django_asgi_app = get_asgi_application()

# These need Django set up first.
from channels.routing import ProtocolTypeRouter  # noqa: E402

from realtime.asgi import one_thread_for_streams  # noqa: E402
from realtime.consumers import websocket_application  # noqa: E402
from realtime.shutdown import lifespan  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": one_thread_for_streams(django_asgi_app),
        "websocket": websocket_application(),
        "lifespan": lifespan,
    }
)
