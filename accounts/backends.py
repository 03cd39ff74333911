"""Admin sign-in with the API's own login: username or email, Argon2id, throttled.

Staff sign in to /admin/ with their FeedApp password. Going through
accounts.services.do_login keeps one definition of a valid login, and the admin's
login form gets the API's limits on failed attempts per account and per address.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth.backends import BaseBackend
from django.http import HttpRequest

from accounts.addresses import UNKNOWN, client_address
from accounts.models import User
from accounts.services import BadCredentials, do_login
from db.sync_bridge import run_sync
from feedapp.errors import TooManyRequests


class AccountBackend(BaseBackend):
    """Authenticates against the `"user"` table through accounts.services."""

    def authenticate(
        self,
        request: HttpRequest | None,
        username: str | None = None,
        password: str | None = None,
        **kwargs: Any,
    ) -> User | None:
        """The active user these credentials name; None otherwise (also when throttled)."""
        if username is None or password is None:
            return None
        address = client_address(request) if request is not None else UNKNOWN
        try:
            signed_in = run_sync(do_login(username, password, address))
        except (BadCredentials, TooManyRequests):
            # The login form answers both alike; do_login logged which one it was.
            return None
        return self.get_user(signed_in.user_id)

    def get_user(self, user_id: Any) -> User | None:
        """The active user with this id (read on every admin request, so a ban applies)."""
        return User.objects.filter(pk=user_id, is_active=True).first()
