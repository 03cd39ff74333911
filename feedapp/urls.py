"""URL root: the JSON API under /api/ and the moderation admin under /admin/."""

from django.contrib import admin
from django.urls import path

from feedapp.api import api
from feedapp.metrics import metrics_view

urlpatterns = [
    # Prometheus' text format, not JSON: outside the API's schema (feedapp/metrics.py).
    path("api/metrics", metrics_view, name="metrics"),
    path("api/", api.urls),
    path("admin/", admin.site.urls),
]
