"""Session tokens: HS256 JWTs carried in an HttpOnly cookie.

Claims: `sub` (the user id), `iat`, `exp`, `sid` (the session: kept when the token is
renewed, so that revoking it ends every renewed copy too), `gen` (the user's session
generation when the session began: bumping it ends all of a user's sessions at once) and
`auth_time` (when the session began, with a password: kept when renewed, so that no
session outlives SESSION_MAX_AGE_SECONDS however often it is used; a token without it,
issued before it existed, counts from its `iat`). accounts.users.get_session_user checks
`sid` and `gen` against the database.

Each distinct token is verified once per process: its claims are kept (a bounded LRU
keyed by the exact token string) and only its expiry is checked again on later uses.
Whether the session still holds (the user exists, is not banned, the session was not
revoked, its generation is current) is asked on every use, with the caches of
accounts.users, so a cached token never outlives a ban, a logout or a revocation.
"""

from __future__ import annotations

import contextlib
import re
import secrets
import time
from collections import OrderedDict
from dataclasses import dataclass

import jwt
from django.conf import settings

from db.ids import MAX_ID_DIGITS

ALGORITHM = "HS256"
_SESSION_ID = re.compile(r"[0-9a-f]{32}")
# Verified tokens kept per process. A valid token can only be made with the key, so
# only a server's own tokens take room here; a full cache forgets the least recently used.
VERIFIED_TOKENS_MAX = 20_000


@dataclass(frozen=True)
class Claims:
    user_id: int
    issued_at: int
    expires_at: int
    session_id: str
    generation: int
    started_at: int

    def past_half_life(self, now: float | None = None) -> bool:
        """True once more than half of the token's lifetime has passed (time to renew)."""
        now = time.time() if now is None else now
        return now - self.issued_at > (self.expires_at - self.issued_at) / 2

    def renewable(self, now: float | None = None) -> bool:
        """Past half its life, and a new token would expire later than this one: near the
        end of the session's maximum age, renewing would only hand out shorter tokens."""
        return self.past_half_life(now) and self.expires_at < session_end(self.started_at)


def new_session_id() -> str:
    return secrets.token_hex(16)


def session_end(started_at: int) -> int:
    """When a session that began at `started_at` ends, however often it was renewed."""
    return started_at + settings.SESSION_MAX_AGE_SECONDS


def token_expiry(issued_at: int, started_at: int) -> int:
    """`exp` of a token issued at `issued_at` in a session that began at `started_at`."""
    return min(issued_at + settings.JWT_TTL_SECONDS, session_end(started_at))


def issue_token(
    user_id: int,
    generation: int = 0,
    session_id: str | None = None,
    now: float | None = None,
    started_at: int | None = None,
) -> str:
    """A token for `user_id` in session `session_id` that began at `started_at` (a new
    session, beginning now, when they are None)."""
    issued = int(time.time() if now is None else now)
    started = issued if started_at is None else started_at
    payload = {
        "sub": str(user_id),
        "iat": issued,
        "exp": token_expiry(issued, started),
        "sid": session_id or new_session_id(),
        "gen": generation,
        "auth_time": started,
    }
    return jwt.encode(payload, settings.JWT_SECRET_KEY, algorithm=ALGORITHM)


class _VerifiedTokens:
    """Tokens whose signature and claims were verified, with their claims (bounded LRU).

    A token's claims never change, and of the checks PyJWT makes only expiry depends on
    the time (a token issued in the future is refused before it gets here, and only
    grows older), so a cached token is valid exactly while `exp` is ahead of the clock:
    read_token checks that on every use.
    """

    def __init__(self, size: int) -> None:
        self.size = size
        self._claims: OrderedDict[str, Claims] = OrderedDict()
        self._key: str | None = None

    def get(self, token: str, key: str) -> Claims | None:
        if key != self._key:  # another key (tests override it): nothing verified holds
            self._claims.clear()
            self._key = key
            return None
        claims = self._claims.get(token)
        if claims is None:
            return None
        # KeyError: forgotten meanwhile by another thread; the claims still hold.
        with contextlib.suppress(KeyError):
            self._claims.move_to_end(token)
        return claims

    def forget(self, token: str) -> None:
        self._claims.pop(token, None)

    def put(self, token: str, claims: Claims) -> None:
        self._claims[token] = claims
        while len(self._claims) > self.size:
            self._claims.popitem(last=False)


_verified = _VerifiedTokens(VERIFIED_TOKENS_MAX)


def read_token(token: str) -> Claims | None:
    """The token's claims if it is well-formed, signed with our key by HS256 and unexpired.

    Whether its session is still valid is a question for the database (see the module).
    """
    key = settings.JWT_SECRET_KEY
    claims = _verified.get(token, key)
    if claims is None:
        claims = _verify(token, key)
        if claims is not None:
            _verified.put(token, claims)
    elif claims.expires_at <= time.time():  # as PyJWT decides: expired at `exp`
        _verified.forget(token)
        return None
    return claims


def _verify(token: str, key: str) -> Claims | None:
    try:
        payload = jwt.decode(
            token,
            key,
            algorithms=[ALGORITHM],  # pins the algorithm: `none` and others are refused
            options={"require": ["sub", "iat", "exp", "sid", "gen"]},
        )
        sub, sid, gen = payload["sub"], payload["sid"], payload["gen"]
        if not isinstance(sub, str) or not sub.isdigit() or len(sub) > MAX_ID_DIGITS:
            return None
        if not isinstance(sid, str) or not _SESSION_ID.fullmatch(sid):
            return None
        if not isinstance(gen, int) or isinstance(gen, bool) or not 0 <= gen < 2**31:
            return None
        issued = int(payload["iat"])
        started = payload.get("auth_time", issued)
        if not isinstance(started, int) or isinstance(started, bool) or started > issued:
            return None
        # A token issued before the maximum age was lowered ends with its session too.
        expires = min(int(payload["exp"]), session_end(started))
        if expires <= time.time():
            return None
        return Claims(
            user_id=int(sub),
            issued_at=issued,
            expires_at=expires,
            session_id=sid,
            generation=gen,
            started_at=started,
        )
    except (jwt.InvalidTokenError, TypeError, ValueError):
        return None
