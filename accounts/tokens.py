"""Session tokens: HS256 JWTs carried in an HttpOnly cookie.

Claims: `sub` (the user id), `iat`, `exp`, `sid` (the session: kept when the token is
renewed, so that revoking it ends every renewed copy too) and `gen` (the user's session
generation when the session began: bumping it ends all of a user's sessions at once).
accounts.users.get_session_user checks the last two against the database.
"""

from __future__ import annotations

import re
import secrets
import time
from dataclasses import dataclass

import jwt
from django.conf import settings

from db.ids import MAX_ID_DIGITS

ALGORITHM = "HS256"
_SESSION_ID = re.compile(r"[0-9a-f]{32}")


@dataclass(frozen=True)
class Claims:
    user_id: int
    issued_at: int
    expires_at: int
    session_id: str
    generation: int

    def past_half_life(self, now: float | None = None) -> bool:
        """True once more than half of the token's lifetime has passed (time to renew)."""
        now = time.time() if now is None else now
        return now - self.issued_at > (self.expires_at - self.issued_at) / 2


def new_session_id() -> str:
    return secrets.token_hex(16)


def issue_token(
    user_id: int, generation: int = 0, session_id: str | None = None, now: float | None = None
) -> str:
    """A token for `user_id` in session `session_id` (a new session when None)."""
    issued = int(time.time() if now is None else now)
    payload = {
        "sub": str(user_id),
        "iat": issued,
        "exp": issued + settings.JWT_TTL_SECONDS,
        "sid": session_id or new_session_id(),
        "gen": generation,
    }
    return jwt.encode(payload, settings.JWT_SECRET_KEY, algorithm=ALGORITHM)


def read_token(token: str) -> Claims | None:
    """The token's claims if it is well-formed, signed with our key by HS256 and unexpired.

    Whether its session is still valid is a question for the database (see the module).
    """
    try:
        payload = jwt.decode(
            token,
            settings.JWT_SECRET_KEY,
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
        return Claims(
            user_id=int(sub),
            issued_at=int(payload["iat"]),
            expires_at=int(payload["exp"]),
            session_id=sid,
            generation=gen,
        )
    except (jwt.InvalidTokenError, TypeError, ValueError):
        return None
