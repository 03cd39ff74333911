"""The middleware chain stays async-native on the API path."""

from __future__ import annotations

import pytest
from django.conf import settings
from django.utils.deprecation import MiddlewareMixin
from django.utils.module_loading import import_string


@pytest.mark.parametrize("path", settings.MIDDLEWARE)
def test_no_thread_hopping_middleware_is_installed_directly(path: str) -> None:
    """MiddlewareMixin runs its hooks in ONE shared thread under ASGI; wrap it instead."""
    middleware = import_string(path)
    assert not (isinstance(middleware, type) and issubclass(middleware, MiddlewareMixin)), (
        f"{path} would serialize every request; wrap it with feedapp.middleware.outside_api"
    )
    assert getattr(middleware, "async_capable", False), f"{path} is not async-capable"


async def test_api_responses_carry_standard_headers(api) -> None:
    response = await api.get("/api/health")
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["X-Frame-Options"] == "DENY"
    assert response["Referrer-Policy"] == "same-origin"
    assert response["Content-Length"] == str(len(response.content))
    assert "sessionid" not in response.cookies
