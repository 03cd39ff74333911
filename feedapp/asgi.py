"""The ASGI entry point, routed by channels: HTTP through Django, the live counts WebSocket,
and the lifespan protocol (which ends live streams on shutdown)."""

import os

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "feedapp.settings")
django.setup(set_prefix=False)

# These need Django set up first.
from channels.routing import ProtocolTypeRouter  # noqa: E402

from feedapp.collector import tune_for_web_process  # noqa: E402
from feedapp.handler import FeedAppASGIHandler  # noqa: E402
from realtime.shutdown import lifespan  # noqa: E402
from realtime.websocket import websocket_application  # noqa: E402

# Everything is loaded: freeze it out of the collector's way (see feedapp/collector.py).
tune_for_web_process()

application = ProtocolTypeRouter(
    {
        # No thread per API request, and so none per live stream (see feedapp/handler.py).
        "http": FeedAppASGIHandler(),
        "websocket": websocket_application(),
        "lifespan": lifespan,
    }
)
