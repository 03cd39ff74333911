"""The `"user"` table as Django's user model, for the admin's sign-in and pages only.

The API never uses this model: the named SQL and accounts.rows.UserRow are its data layer.
dbmate owns the table (`managed = False`) and tests/test_admin_schema.py fails when the
two disagree. New accounts are made by accounts.services, whoever asks (the API,
`createsuperuser`), so they are hashed and validated one way.

There is no PermissionsMixin: Django's permission and group tables do not exist, and a
handful of fixed rights needs none. An active superuser may do everything in the admin,
an active staff member what STAFF_PERMISSIONS lists, anybody else nothing.
"""

from __future__ import annotations

from typing import Any, NoReturn

import pydantic
from django.contrib.auth.base_user import AbstractBaseUser, BaseUserManager
from django.core.exceptions import ValidationError
from django.core.validators import (
    MaxLengthValidator,
    MinLengthValidator,
    RegexValidator,
    validate_email,
)
from django.db import models
from django.db.models.functions import Now
from django.utils.crypto import salted_hmac

from accounts.rows import UserRow
from accounts.schemas import (
    USERNAME_MAX_LENGTH,
    USERNAME_MIN_LENGTH,
    USERNAME_PATTERN,
    CreateUserPayload,
)
from accounts.services import do_create_user
from db.fields import CITextField
from db.readonly import ReadOnlyQuerySet, refuse_write
from db.sync_bridge import run_sync
from feedapp.errors import Conflict

# What staff who are not superusers may do. Moderation only: seeing accounts, polls,
# grants and reports, banning, the moderator role, deleting polls, revoking grants,
# working the review queue (dismissing reports). Changing who is staff
# (`accounts.change_user`) is left to superusers.
STAFF_PERMISSIONS = frozenset(
    {
        "accounts.view_user",
        "accounts.ban_user",
        "accounts.moderate_user",
        "polls.view_poll",
        "polls.delete_poll",
        "polls.view_voteoption",
        "polls.view_pollgrant",
        "polls.revoke_pollgrant",
        "moderation.view_report",
        "moderation.view_reportedpoll",
        "moderation.dismiss_report",
    }
)
STAFF_APPS = frozenset(perm.split(".", 1)[0] for perm in STAFF_PERMISSIONS)


def _validated(username: str, email: str, password: str | None) -> CreateUserPayload:
    """The API's registration rules, so that an account made here also works there."""
    if password is None:
        raise ValidationError("A password is required (DJANGO_SUPERUSER_PASSWORD with --noinput).")
    try:
        return CreateUserPayload(username=username, email=email, password=password)
    except pydantic.ValidationError as exc:
        # The field and the rule, never the input: it may be the password.
        raise ValidationError(
            [f"{'.'.join(map(str, error['loc']))}: {error['msg']}" for error in exc.errors()]
        ) from None


class UserManager(BaseUserManager["User"]):
    """Creates accounts through accounts.services (used by `createsuperuser`).

    Its querysets read only: a bulk delete would take the users' polls with it without
    telling anyone (cached counts, live streams), and bans go through the services.
    """

    def get_queryset(self) -> ReadOnlyQuerySet[User]:
        return ReadOnlyQuerySet(self.model, using=self._db)

    def create_user(
        self,
        username: str,
        email: str,
        password: str | None = None,
        *,
        is_staff: bool = False,
        is_superuser: bool = False,
    ) -> User:
        """A new active account; ValidationError when the input or the name is refused."""
        valid = _validated(username, email, password)
        try:
            created = run_sync(
                do_create_user(
                    valid.username,
                    valid.email,
                    valid.password,
                    is_staff=is_staff,
                    is_superuser=is_superuser,
                )
            )
        except Conflict as exc:
            raise ValidationError(exc.message) from None
        return self.get(pk=created.id)

    def create_superuser(
        self, username: str, email: str, password: str | None = None, **extra: Any
    ) -> User:
        """A new active account that is staff and superuser."""
        if extra:
            raise TypeError(f"unexpected fields: {', '.join(sorted(extra))}")
        return self.create_user(username, email, password, is_staff=True, is_superuser=True)


class User(AbstractBaseUser):
    id = models.BigAutoField(primary_key=True)
    username = CITextField(
        unique=True,
        help_text="3 to 32 letters, digits, _ . or -; unique in any letter case.",
        validators=[
            MinLengthValidator(USERNAME_MIN_LENGTH),
            MaxLengthValidator(USERNAME_MAX_LENGTH),
            RegexValidator(USERNAME_PATTERN),
        ],
    )
    email = CITextField(unique=True, validators=[validate_email])
    # Django's hasher format (Argon2id). Never a form field: not editable.
    password = models.TextField(editable=False)
    is_active = models.BooleanField(
        "active", default=True, help_text="Off: banned; sessions stop working within seconds."
    )
    is_staff = models.BooleanField(
        "staff", default=False, help_text="May sign in to this admin and moderate."
    )
    is_superuser = models.BooleanField(
        "superuser", default=False, help_text="May do everything here, make staff included."
    )
    created_at = models.DateTimeField(db_default=Now(), editable=False)
    # Bumped to end every session (API and admin); see accounts.tokens.
    session_generation = models.IntegerField(default=0, editable=False)
    # last_login comes from AbstractBaseUser.

    objects = UserManager()

    USERNAME_FIELD = "username"
    EMAIL_FIELD = "email"
    REQUIRED_FIELDS = ["email"]

    class Meta:
        managed = False
        db_table = "user"
        ordering = ["-id"]

    def __str__(self) -> str:
        return str(self.username)

    def get_session_auth_hash(self) -> str:
        """What an admin sign-in is bound to: the password hash and the session generation,
        so that a password change, a ban or "log out everywhere" ends it too."""
        return salted_hmac(
            "feedapp.accounts.User.get_session_auth_hash",
            f"{self.password}:{self.session_generation}",
            algorithm="sha256",
        ).hexdigest()

    def delete(self, *args: Any, **kwargs: Any) -> NoReturn:
        """Accounts are deactivated, never deleted (their polls would go without a word)."""
        refuse_write(type(self), "delete")

    # save() stays: Django itself records last_login with it, and `changepassword` sets
    # a password; neither has effects beyond the row.

    def set_password(self, raw_password: str | None) -> None:
        """Set the password and end every session, as the API's password change does:
        `manage.py changepassword` and Django's password forms come through here, and an
        operator resetting a password usually does so because the account was taken."""
        super().set_password(raw_password)
        self.session_generation += 1

    def has_perm(self, perm: str, obj: models.Model | None = None) -> bool:
        """Whether this user holds the admin right `perm` ("app_label.codename")."""
        if not self.is_active:
            return False
        return self.is_superuser or (self.is_staff and perm in STAFF_PERMISSIONS)

    def has_perms(self, perm_list: Any, obj: models.Model | None = None) -> bool:
        """Whether this user holds every right in `perm_list`."""
        return all(self.has_perm(perm, obj) for perm in perm_list)

    def has_module_perms(self, app_label: str) -> bool:
        """Whether this user holds any right in the app `app_label`."""
        if not self.is_active:
            return False
        return self.is_superuser or (self.is_staff and app_label in STAFF_APPS)

    def may_ban(self, other: User) -> bool:
        """Whether this admin may ban `other`: never themselves; superusers only if one."""
        if other.pk == self.pk or not self.has_perm("accounts.ban_user"):
            return False
        return self.is_superuser or not other.is_superuser

    def as_actor(self) -> UserRow:
        """This user as the services know users (accounts.rows.UserRow)."""
        return UserRow(
            id=self.pk,
            username=str(self.username),
            email=str(self.email),
            is_active=self.is_active,
            is_staff=self.is_staff,
        )
