"""The ASGI entry point, routed by channels: HTTP through Django (live streams sharing one
sync thread) and the live counts WebSocket."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "feedapp.settings")
django_asgi_app = get_asgi_application()

# These need Django set up first.
from channels.routing import ProtocolTypeRouter  # noqa: E402

from realtime.asgi import one_thread_for_streams  # noqa: E402
from realtime.consumers import websocket_application  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": one_thread_for_streams(django_asgi_app),
        "websocket": websocket_application(),
    }
)
