"""The JSON API root: one django-ninja instance that every app adds its router to."""

from ninja import NinjaAPI

from accounts.views import router as accounts_router
from feedapp import service
from feedapp.errors import install_error_handlers
from polls.views import router as polls_router
from realtime.views import router as realtime_router
from votes.views import router as votes_router

api = NinjaAPI(
    title="FeedApp API",
    version="1.0.0",
    description=(
        "Live polls: accounts, polls, votes and their live counts.\n\n"
        "Any route may answer 503 with `Retry-After` while a service it needs (the "
        "database, the message broker) is unavailable; sending the request again after "
        "that delay is safe. A 503 to a vote means it was not confirmed: it may still be "
        "applied."
    ),
    docs_url="/docs",
    openapi_url="/openapi.json",
    urls_namespace="api",
)
install_error_handlers(api)
api.add_router("", service.router)
api.add_router("/user", accounts_router)
api.add_router("/poll", polls_router)
api.add_router("/vote", votes_router)
# The live stream lives in its own app, under the same prefix as the other vote routes.
api.add_router("/vote", realtime_router)
