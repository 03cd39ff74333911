"""Account write paths: registration, login, creation outside the API, and moderation.

Moderation is deactivation (a ban) and the admin flags. Views, the admin and
`createsuperuser` (through accounts.models.UserManager) call these; they never log a
password or a hash, and they log user-chosen text only through %r so that it cannot
forge log lines.
"""

from __future__ import annotations

import logging

from django.conf import settings

from accounts import throttle
from accounts.passwords import check_password, hash_password
from accounts.rows import Credentials, Taken, UserRow
from accounts.users import forget_user
from db.pool import connection
from db.sql import execute, fetch_one, fetch_value, queries
from feedapp.errors import Conflict, NotAuthenticated

log = logging.getLogger(__name__)
Q = queries("accounts")

LOGIN_BY_ADDRESS = "login-failures:address"
LOGIN_BY_ACCOUNT = "login-failures:account"
REGISTER_BY_ADDRESS = "registrations:address"
TOO_MANY_LOGINS = "Too many failed logins; try again later"
TOO_MANY_REGISTRATIONS = "Too many registrations; try again later"


class BadCredentials(NotAuthenticated):
    """Unknown account, wrong password or deactivated user: deliberately one case."""

    message = "Invalid username or password"


def _login_rate() -> throttle.Rate:
    return throttle.Rate(settings.LOGIN_FAILURES_LIMIT, settings.LOGIN_FAILURES_WINDOW_SECONDS)


def _registration_rate() -> throttle.Rate:
    return throttle.Rate(settings.REGISTRATIONS_LIMIT, settings.REGISTRATIONS_WINDOW_SECONDS)


async def _insert_user(
    username: str, email: str, password: str, is_staff: bool, is_superuser: bool
) -> UserRow:
    """The new active account; Conflict when the username or email is taken."""
    encoded = await hash_password(password)
    params = {"username": username, "email": email}
    async with connection() as conn:
        user = await fetch_one(conn, Q["create_user"], {**params, "password": encoded}, UserRow)
        if user is not None and (is_staff or is_superuser):
            flags = {"user_id": user.id, "is_staff": is_staff, "is_superuser": is_superuser}
            await execute(conn, Q["set_user_staff"], flags)
            user = await fetch_one(conn, Q["get_user_by_id"], {"user_id": user.id}, UserRow)
        taken = None if user else await fetch_one(conn, Q["find_taken"], params, Taken)
    if user is not None:
        return user
    if taken is not None and taken.username_taken:
        raise Conflict("Username is already taken")
    if taken is not None and taken.email_taken:
        raise Conflict("Email is already registered")
    # Taken and freed again between the two statements.
    raise Conflict("Username or email is already taken")


async def do_register_user(username: str, email: str, password: str, address: str) -> UserRow:
    """Create an active account; Conflict when the username or email is taken."""
    verdict = await throttle.consume(REGISTER_BY_ADDRESS, address, _registration_rate())
    if not verdict.allowed:
        log.warning("registration throttled for address %r", address)
        throttle.raise_if_denied(verdict, TOO_MANY_REGISTRATIONS)
    try:
        user = await _insert_user(username, email, password, is_staff=False, is_superuser=False)
    except Conflict as exc:
        log.info("registration refused for %r from %r: %s", username, address, exc.message)
        raise
    log.info("registered user %d %r from %r", user.id, user.username, address)
    return user


async def do_create_user(
    username: str,
    email: str,
    password: str,
    *,
    is_staff: bool = False,
    is_superuser: bool = False,
) -> UserRow:
    """Create an account outside any request (`createsuperuser`, the shell); not throttled.

    The caller validates the input as the API would (accounts.models.UserManager does).
    Conflict when the username or email is taken.
    """
    user = await _insert_user(username, email, password, is_staff, is_superuser)
    log.info(
        "created user %d %r (staff: %s, superuser: %s)",
        user.id,
        user.username,
        is_staff,
        is_superuser,
    )
    return user


def _account_subject(login: str, credentials: Credentials | None) -> str:
    # Per account when it exists, so that its username and its email share one budget.
    return f"id:{credentials.id}" if credentials else f"login:{login.lower()}"


async def do_login(login: str, password: str, address: str) -> int:
    """The id of the active account `login` (username or email) names; BadCredentials else.

    Raises TooManyRequests once the address or the account ran out of failed attempts.
    """
    rate = _login_rate()
    by_address = await throttle.peek(LOGIN_BY_ADDRESS, address, rate)
    if not by_address.allowed:
        log.warning("login throttled for address %r (login %r)", address, login)
        throttle.raise_if_denied(by_address, TOO_MANY_LOGINS)
    async with connection() as conn:
        credentials = await fetch_one(conn, Q["get_credentials"], {"login": login}, Credentials)
    subject = _account_subject(login, credentials)
    by_account = await throttle.peek(LOGIN_BY_ACCOUNT, subject, rate)
    if not by_account.allowed:
        log.warning("login throttled for %r from %r", login, address)
        throttle.raise_if_denied(by_account, TOO_MANY_LOGINS)

    encoded = credentials.password if credentials else None
    matches, must_rehash = await check_password(password, encoded)
    if credentials is None or not matches or not credentials.is_active:
        await throttle.consume(LOGIN_BY_ADDRESS, address, rate)
        await throttle.consume(LOGIN_BY_ACCOUNT, subject, rate)
        log.warning("login failed for %r from %r", login, address)
        raise BadCredentials()

    # A hash made with older parameters is replaced while the plaintext is at hand.
    new_hash = await hash_password(password) if must_rehash else None
    async with connection() as conn:
        await execute(conn, Q["record_login"], {"user_id": credentials.id, "password": new_hash})
    # Failures before a success were the owner's typos; the address budget stays spent.
    await throttle.clear(LOGIN_BY_ACCOUNT, subject)
    log.info("login of user %d from %r", credentials.id, address)
    return credentials.id


async def _set_active(user_id: int, active: bool) -> bool:
    async with connection() as conn:
        changed = await fetch_value(
            conn, Q["set_user_active"], {"user_id": user_id, "is_active": active}
        )
    forget_user(user_id)
    return changed is not None


async def do_deactivate_user(user_id: int) -> bool:
    """Ban a user: their sessions stop working within AUTH_USER_CACHE_SECONDS everywhere.

    True when the user was active before.
    """
    changed = await _set_active(user_id, False)
    if changed:
        log.info("deactivated user %d", user_id)
    return changed


async def do_reactivate_user(user_id: int) -> bool:
    """Lift a ban; True when the user was inactive before."""
    changed = await _set_active(user_id, True)
    if changed:
        log.info("reactivated user %d", user_id)
    return changed


async def do_set_staff(user_id: int, is_staff: bool, is_superuser: bool) -> bool:
    """Set who may use the admin (staff) and who may do everything there (superuser).

    True when a flag changed. Whoever calls decides who may do this (the admin:
    superusers only).
    """
    async with connection() as conn:
        changed = await fetch_value(
            conn,
            Q["set_user_staff"],
            {"user_id": user_id, "is_staff": is_staff, "is_superuser": is_superuser},
        )
    forget_user(user_id)
    if changed is not None:
        log.info("user %d: staff %s, superuser %s", user_id, is_staff, is_superuser)
    return changed is not None
