"""URL root: the JSON API under /api/ and the moderation admin under /admin/."""

from django.contrib import admin
from django.urls import path

from feedapp.api import api

urlpatterns = [
    path("api/", api.urls),
    path("admin/", admin.site.urls),
]
