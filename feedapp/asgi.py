"""The ASGI entry point: HTTP through Django, routed by channels."""

import os

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "feedapp.settings")
django.setup(set_prefix=False)

from channels.routing import ProtocolTypeRouter  # noqa: E402  (needs Django set up first)

from feedapp.handler import FeedAppASGIHandler  # noqa: E402

django_asgi_app = FeedAppASGIHandler()

application = ProtocolTypeRouter({"http": django_asgi_app})
