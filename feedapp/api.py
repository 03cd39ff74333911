"""The JSON API root: one django-ninja instance that every app adds its router to."""

from ninja import NinjaAPI

from feedapp import service
from polls import views as polls_views

api = NinjaAPI(
    title="FeedApp API",
    version="1.0.0",
    description="Live polls: accounts, polls, votes and their live counts.",
    docs_url="/docs",
    openapi_url="/openapi.json",
    urls_namespace="api",
)
api.add_router("", service.router)
api.add_router("/poll", polls_views.router)
