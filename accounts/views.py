"""The accounts API: register, login, logout, password change and the caller's own account."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from ninja import Router, Status

from accounts.addresses import client_address
from accounts.auth import require_user, session_claims
from accounts.cookies import clear_session_cookie, set_session_cookie
from accounts.schemas import ChangePasswordPayload, CreateUserPayload, LoginPayload, UserInfo
from accounts.security import SESSION_REQUIRED
from accounts.services import (
    do_change_password,
    do_end_all_sessions,
    do_login,
    do_logout,
    do_register_user,
)
from feedapp.rendering import json_answer
from feedapp.schemas import Detail, HTTPValidationError

router = Router(tags=["accounts"])

# Every route names its OpenAPI operation (`operation_id`): generated clients derive their
# function names from it, and these are the first backend's, which its frontend imports.


@router.post(
    "/register",
    response={201: UserInfo, 409: Detail, 422: HTTPValidationError, 429: Detail},
    operation_id="register_user",
    summary="Register",
)
async def register(
    request: HttpRequest, payload: CreateUserPayload, response: HttpResponse
) -> Status[UserInfo]:
    """Create an account and sign in (sets the session cookie)."""
    user = await do_register_user(
        payload.username, payload.email, payload.password, client_address(request)
    )
    set_session_cookie(response, user.id, user.session_generation)
    return Status(201, UserInfo(id=user.id, username=user.username, email=user.email))


@router.post(
    "/login",
    response={204: None, 401: Detail, 422: HTTPValidationError, 429: Detail},
    operation_id="login",
    summary="Log in",
)
async def login(
    request: HttpRequest, payload: LoginPayload, response: HttpResponse
) -> Status[None]:
    """Sign in by username or email (sets the session cookie)."""
    signed_in = await do_login(payload.username, payload.password, client_address(request))
    set_session_cookie(response, signed_in.user_id, signed_in.session_generation)
    return Status(204, None)


@router.post("/logout", response={204: None}, operation_id="logout", summary="Log out")
async def logout(request: HttpRequest, response: HttpResponse) -> Status[None]:
    """End this session on the server (a copy of its token stops working too) and clear
    the session cookie."""
    claims = session_claims(request)
    if claims is not None:
        await do_logout(claims)
    clear_session_cookie(response)
    return Status(204, None)


@router.post(
    "/logout-everywhere",
    response={204: None, 401: Detail},
    operation_id="logout_everywhere",
    summary="Log out everywhere",
    auth=SESSION_REQUIRED,
)
async def logout_everywhere(request: HttpRequest, response: HttpResponse) -> Status[None]:
    """End every session of the signed-in user, on every device, and clear this cookie."""
    await do_end_all_sessions((await require_user(request)).id)
    clear_session_cookie(response)
    return Status(204, None)


@router.post(
    "/password",
    response={204: None, 401: Detail, 403: Detail, 422: HTTPValidationError, 429: Detail},
    operation_id="change_password",
    summary="Change the password",
    auth=SESSION_REQUIRED,
)
async def change_password(
    request: HttpRequest, payload: ChangePasswordPayload, response: HttpResponse
) -> Status[None]:
    """Replace the password (the current one is checked like a login); every other session
    of the user ends, this one gets a fresh cookie."""
    user = await require_user(request)
    signed_in = await do_change_password(
        user, payload.current_password, payload.new_password, client_address(request)
    )
    set_session_cookie(response, signed_in.user_id, signed_in.session_generation)
    return Status(204, None)


@router.get(
    "/me",
    response={200: UserInfo, 401: Detail},
    operation_id="read_users_me",
    summary="Current user",
    auth=SESSION_REQUIRED,
)
async def me(request: HttpRequest) -> HttpResponse:
    """The signed-in user."""
    user = await require_user(request)
    return json_answer({"id": user.id, "username": user.username, "email": user.email})
