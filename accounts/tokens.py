"""Session tokens: HS256 JWTs with `sub`, `iat` and `exp`, carried in an HttpOnly cookie."""

from __future__ import annotations

import time
from dataclasses import dataclass

import jwt
from django.conf import settings

from db.ids import MAX_ID_DIGITS

ALGORITHM = "HS256"


@dataclass(frozen=True)
class Claims:
    user_id: int
    issued_at: int
    expires_at: int

    def past_half_life(self, now: float | None = None) -> bool:
        """True once more than half of the token's lifetime has passed (time to renew)."""
        now = time.time() if now is None else now
        return now - self.issued_at > (self.expires_at - self.issued_at) / 2


def issue_token(user_id: int, now: float | None = None) -> str:
    issued = int(time.time() if now is None else now)
    payload = {"sub": str(user_id), "iat": issued, "exp": issued + settings.JWT_TTL_SECONDS}
    return jwt.encode(payload, settings.JWT_SECRET_KEY, algorithm=ALGORITHM)


def read_token(token: str) -> Claims | None:
    """The token's claims if it is well-formed, signed with our key by HS256 and unexpired."""
    try:
        payload = jwt.decode(
            token,
            settings.JWT_SECRET_KEY,
            algorithms=[ALGORITHM],  # pins the algorithm: `none` and others are refused
            options={"require": ["sub", "iat", "exp"]},
        )
        sub = payload["sub"]
        if not isinstance(sub, str) or not sub.isdigit() or len(sub) > MAX_ID_DIGITS:
            return None
        return Claims(
            user_id=int(sub), issued_at=int(payload["iat"]), expires_at=int(payload["exp"])
        )
    except (jwt.InvalidTokenError, TypeError, ValueError):
        return None
