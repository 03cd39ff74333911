"""Account write paths: registration, login, creation outside the API, and moderation.

Moderation is deactivation (a ban) and the admin flags. Views, the admin and
`createsuperuser` (through accounts.models.UserManager) call these; they never log a
password or a hash, and they log user-chosen text only through %r so that it cannot
forge log lines.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from django.conf import settings

from accounts import throttle
from accounts.addresses import rate_limit_key
from accounts.passwords import check_password, hash_password
from accounts.rows import Credentials, SignIn, Taken, UserRow
from accounts.tokens import Claims
from accounts.users import forget_session, forget_user
from db.pool import connection
from db.sql import execute, fetch_one, fetch_value, queries
from feedapp.errors import Conflict, Forbidden, NotAuthenticated

log = logging.getLogger(__name__)
Q = queries("accounts")

LOGIN_BY_ACCOUNT_AND_ADDRESS = "login-failures:account-address"
LOGIN_BY_ACCOUNT = "login-failures:account"
LOGIN_BY_ADDRESS = "login-failures:address"
REGISTER_BY_ADDRESS = "registrations:address"
TOO_MANY_LOGINS = "Too many failed logins; try again later"
TOO_MANY_REGISTRATIONS = "Too many registrations; try again later"


class BadCredentials(NotAuthenticated):
    """Unknown account, wrong password or deactivated user: deliberately one case."""

    message = "Invalid username or password"


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
    verdict = await throttle.consume(
        REGISTER_BY_ADDRESS, rate_limit_key(address), _registration_rate()
    )
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


def login_limits(account: str, address: str) -> tuple[throttle.Limit, ...]:
    """The buckets a failed login counts in (README, "Sessions and their defences").

    Per account and address at the documented limit: brute force from one place is
    slow, but it locks out nobody else. Per account from anywhere, and per address for
    any account, at much higher limits: many addresses against one account, or one
    address against many accounts, stay slow without one attacker locking the owner out.
    """
    window = settings.LOGIN_FAILURES_WINDOW_SECONDS
    where = rate_limit_key(address)
    return (
        throttle.Limit(
            LOGIN_BY_ACCOUNT_AND_ADDRESS,
            f"{account}|{where}",
            throttle.Rate(settings.LOGIN_FAILURES_LIMIT, window),
        ),
        throttle.Limit(
            LOGIN_BY_ACCOUNT, account, throttle.Rate(settings.LOGIN_ACCOUNT_FAILURES_LIMIT, window)
        ),
        throttle.Limit(
            LOGIN_BY_ADDRESS, where, throttle.Rate(settings.LOGIN_ADDRESS_FAILURES_LIMIT, window)
        ),
    )


async def _check_password(
    credentials: Credentials | None, login: str, password: str, address: str
) -> None:
    """Pass when `credentials` are of an active account and `password` is its password.

    BadCredentials otherwise. One failed attempt is reserved in every login bucket
    BEFORE the (slow) password check and given back when the password was right, so
    parallel guesses cannot all pass a check that none of them has been counted in yet.
    TooManyRequests when a bucket is full.
    """
    limits = login_limits(_account_subject(login, credentials), address)
    attempt = await throttle.reserve(*limits)
    if not attempt.allowed:
        refused_by = attempt.verdict.refused_by
        log.warning(
            "login throttled for %r from %r (%s)",
            login,
            address,
            refused_by.scope if refused_by else "?",
        )
        throttle.raise_if_denied(attempt.verdict, TOO_MANY_LOGINS)

    encoded = credentials.password if credentials else None
    matches, must_rehash = await check_password(password, encoded)
    if credentials is None or not matches or not credentials.is_active:
        log.warning("login failed for %r from %r", login, address)
        raise BadCredentials()  # the reserved attempt stays counted: a failure
    await attempt.refund()
    # Failures from this address before a success were the owner's own typos.
    pair = limits[0]
    await throttle.clear(pair.scope, pair.subject)
    if must_rehash:
        # A hash made with older parameters is replaced while the plaintext is at hand.
        await _store_password(credentials.id, await hash_password(password), end_sessions=False)


async def do_login(login: str, password: str, address: str) -> SignIn:
    """Sign in the active account `login` (username or email) names; BadCredentials else.

    Raises TooManyRequests once the account, the address or the pair of both ran out of
    failed attempts (see `login_limits`).
    """
    async with connection() as conn:
        credentials = await fetch_one(conn, Q["get_credentials"], {"login": login}, Credentials)
    await _check_password(credentials, login, password, address)
    assert credentials is not None
    async with connection() as conn:
        await execute(conn, Q["record_login"], {"user_id": credentials.id})
    log.info("login of user %d from %r", credentials.id, address)
    return SignIn(credentials.id, credentials.session_generation)


async def _store_password(user_id: int, encoded: str, *, end_sessions: bool) -> int:
    """Store a new hash; the user's session generation afterwards."""
    async with connection() as conn:
        generation = await fetch_value(
            conn,
            Q["set_password"],
            {"user_id": user_id, "password": encoded, "end_sessions": end_sessions},
        )
    forget_user(user_id)
    return int(generation or 0)


async def do_change_password(
    user: UserRow, current_password: str, new_password: str, address: str
) -> SignIn:
    """Replace the password after checking the current one, and end every session.

    The current password is checked like a login (same limits on failures): Forbidden
    when wrong. The caller gets the new generation, to sign the
    requesting client in again; every other session of the user ends.
    """
    async with connection() as conn:
        credentials = await fetch_one(
            conn, Q["get_credentials_by_id"], {"user_id": user.id}, Credentials
        )
    try:
        await _check_password(credentials, f"id:{user.id}", current_password, address)
    except BadCredentials:
        raise Forbidden("The current password is wrong") from None
    generation = await _store_password(
        user.id, await hash_password(new_password), end_sessions=True
    )
    log.info("user %d changed the password from %r; all sessions ended", user.id, address)
    return SignIn(user.id, generation)


async def do_logout(claims: Claims) -> None:
    """End one session (every renewed copy of its token too) until its token expires."""
    async with connection() as conn:
        await execute(
            conn,
            Q["revoke_session"],
            {
                "session_id": claims.session_id,
                "user_id": claims.user_id,
                "expires_at": datetime.fromtimestamp(claims.expires_at, UTC),
            },
        )
    forget_session(claims.session_id)
    log.info("user %d logged out of a session", claims.user_id)


async def do_end_all_sessions(user_id: int) -> bool:
    """End every session of the user (log out everywhere); False when no such user."""
    async with connection() as conn:
        generation = await fetch_value(conn, Q["end_all_sessions"], {"user_id": user_id})
    forget_user(user_id)
    if generation is not None:
        log.info("ended every session of user %d", user_id)
    return generation is not None


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
