"""The JSON API root: one django-ninja instance that every app adds its router to."""

from ninja import NinjaAPI
from ninja.errors import ConfigError
from ninja.operation import Operation

from accounts.views import router as accounts_router
from feedapp import service
from feedapp.errors import install_error_handlers
from polls.views import router as polls_router
from realtime.views import router as realtime_router
from votes.views import router as votes_router


class FeedAppAPI(NinjaAPI):
    """ninja's API, with one rule of ours: every route names its OpenAPI operation."""

    def get_openapi_operation_id(self, operation: Operation) -> str:
        # ninja asks only for routes without an `operation_id`. Its default name
        # (module path + function) would become a generated client's function name and
        # change with every refactoring; the contract's names are chosen (README, "The
        # API contract"), so a route without one fails the schema and the tests at once.
        view = f"{operation.view_func.__module__}.{operation.view_func.__name__}"
        raise ConfigError(
            f"{view} has no operation_id: give its route a snake_case `operation_id` "
            "(the name generated clients will call it by)"
        )


api = FeedAppAPI(
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
api.add_router("/vote", votes_router)
# The live stream lives in its own app, under the same prefix as the other vote routes.
api.add_router("/vote", realtime_router)
