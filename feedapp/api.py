"""The JSON API root: one django-ninja instance that every app adds its router to."""

from ninja import NinjaAPI

from accounts.views import router as accounts_router
from feedapp import service
from feedapp.errors import install_error_handlers
from moderation.views import router as moderation_router
from polls.views import router as polls_router
from realtime.views import router as realtime_router
from votes.views import router as votes_router

api = NinjaAPI(
    title="FeedApp API",
    version="1.0.0",
    description="Live polls: accounts, polls, votes and their live counts.",
    docs_url="/docs",
    openapi_url="/openapi.json",
    urls_namespace="api",
)
install_error_handlers(api)
api.add_router("", service.router)
api.add_router("/user", accounts_router)
api.add_router("/poll", polls_router)
# Reports are moderation's, on the poll they are about.
api.add_router("/poll", moderation_router)
api.add_router("/vote", votes_router)
# The live stream lives in its own app, under the same prefix as the other vote routes.
api.add_router("/vote", realtime_router)
