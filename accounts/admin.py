"""The users admin: find accounts, ban and reactivate them, give or take the moderator role.

Bans and roles change through the same services as everywhere else
(accounts.services, polls.services), so a ban reaches every process's user cache and
a moderator is a plain grant. Each action notes what it did in the user's history.
Accounts are created by registration or `createsuperuser`, never deleted here, and
their password hashes never appear.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.contrib.admin.widgets import AdminSplitDateTime
from django.contrib.auth.forms import UsernameField
from django.contrib.auth.models import Group
from django.core.exceptions import ValidationError
from django.db.models import Exists, F, OuterRef, QuerySet
from django.db.models.functions import Now
from django.http import HttpRequest
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.safestring import SafeString

from accounts.models import User
from accounts.services import do_deactivate_user, do_reactivate_user, do_set_staff
from db.sync_bridge import run_sync
from feedapp.changelists import CorrelatedCount, LargeTableAdmin
from polls.models import PollGrant
from polls.services import do_grant_moderator, do_revoke_moderator

admin.site.site_header = "FeedApp moderation"
admin.site.site_title = "FeedApp admin"
admin.site.index_title = "Moderation"
# Groups need Django's auth tables, which do not exist: rights are fixed in accounts.models.
admin.site.unregister(Group)


class SignInForm(AdminAuthenticationForm):
    """The admin's sign-in: a FeedApp username or email and the API password."""

    username = UsernameField(
        label="Username or email", max_length=254, widget=forms.TextInput(attrs={"autofocus": True})
    )


admin.site.login_form = SignInForm


def signed_in_staff(request: HttpRequest) -> User:
    """The admin's signed-in user (the admin site lets only active staff this far)."""
    user = request.user
    if not isinstance(user, User):
        raise TypeError("the admin is only for signed-in FeedApp users")
    return user


CONFIRM_BAN = "confirm_ban"


def ask_before_banning(
    modeladmin: admin.ModelAdmin[Any],
    request: HttpRequest,
    action: str,
    selected: list[Any],
    users: list[User],
) -> TemplateResponse | None:
    """The page that asks a moderator to confirm a ban, or None once they have.

    A ban ends the users' sessions and streams at once and cannot be fully undone (a
    reactivated user signs in again; resolved reports stay resolved), so, like a deletion,
    it asks first. The page re-posts the action with the same `selected` rows.
    """
    if CONFIRM_BAN in request.POST:
        return None
    staff = signed_in_staff(request)
    return TemplateResponse(
        request,
        "admin/feedapp/confirm_ban.html",
        {
            **modeladmin.admin_site.each_context(request),
            "title": "Ban these users?",
            "opts": modeladmin.opts,
            "banned": [user for user in users if staff.may_ban(user) and user.is_active],
            "spared": [user for user in users if not staff.may_ban(user)],
            "selected": selected,
            "action": action,
            "confirm": CONFIRM_BAN,
            "action_checkbox_name": ACTION_CHECKBOX_NAME,
            "media": modeladmin.media,
        },
    )


def _moderator_in_force() -> Exists:
    now = Now()
    return Exists(
        PollGrant.objects.filter(
            user=OuterRef("pk"), poll__isnull=True, role="moderator", granted_at__lte=now
        ).exclude(expires_at__lte=now)
    )


class ModeratorFilter(admin.SimpleListFilter):
    title = "moderator"
    parameter_name = "moderator"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("yes", "Yes"), ("no", "No")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        if self.value() in ("yes", "no"):
            return queryset.filter(is_moderator=self.value() == "yes")
        return queryset


class ModeratorGrantForm(forms.Form):
    expires_at = forms.SplitDateTimeField(
        label="Until",
        required=False,
        widget=AdminSplitDateTime,
        help_text="Empty: until revoked.",
    )

    def clean_expires_at(self) -> Any:
        value = self.cleaned_data["expires_at"]
        if value is not None and value <= timezone.now():
            raise ValidationError("Must be in the future.")
        return value


@admin.register(User)
class UserAdmin(LargeTableAdmin):
    list_display = (
        "id",
        "username",
        "email",
        "is_active",
        "is_staff",
        "is_superuser",
        "moderator",
        "polls_created",
        "votes_cast",
        "created_at",
        "last_login",
    )
    list_display_links = ("id", "username")
    list_filter = ("is_active", "is_staff", "is_superuser", ModeratorFilter)
    search_fields = ("username", "email")
    # Each has an index; sorting by another column would sort every user (ids follow
    # registration, so id is also the registration order).
    sortable_by = ("id", "username", "email")
    fields = (
        "id",
        "username",
        "email",
        "is_active",
        "is_staff",
        "is_superuser",
        "moderator",
        "grants",
        "polls",
        "reports",
        "created_at",
        "last_login",
    )
    actions = ("deactivate", "reactivate", "grant_moderator", "revoke_moderator")

    def get_queryset(self, request: HttpRequest) -> QuerySet[User]:
        # The counts are correlated subqueries on indexed columns: only the page's rows
        # pay for them (they are not sortable, which would count for every user).
        return (
            super()
            .get_queryset(request)
            .defer("password")
            .annotate(
                is_moderator=_moderator_in_force(),
                polls_created=CorrelatedCount("poll", "creator_id", F("pk")),
                votes_cast=CorrelatedCount("vote", "user_id", F("pk")),
            )
        )

    @admin.display(description="polls created")
    def polls_created(self, user: User) -> SafeString:
        url = reverse("admin:polls_poll_changelist")
        count = int(getattr(user, "polls_created", 0))
        return format_html('<a href="{}?creator={}">{}</a>', url, user.pk, count)

    @admin.display(description="votes cast")
    def votes_cast(self, user: User) -> int:
        return int(getattr(user, "votes_cast", 0))

    @admin.display(boolean=True, description="moderator", ordering="is_moderator")
    def moderator(self, user: User) -> bool:
        return bool(getattr(user, "is_moderator", False))

    @admin.display(description="grants held")
    def grants(self, user: User) -> SafeString:
        url = reverse("admin:polls_pollgrant_changelist")
        return format_html('<a href="{}?user={}">grants of this user</a>', url, user.pk)

    @admin.display(description="polls created")
    def polls(self, user: User) -> SafeString:
        url = reverse("admin:polls_poll_changelist")
        return format_html('<a href="{}?creator={}">polls of this user</a>', url, user.pk)

    @admin.display(description="reports filed")
    def reports(self, user: User) -> SafeString:
        url = reverse("admin:moderation_report_changelist")
        return format_html('<a href="{}?reporter={}">reports by this user</a>', url, user.pk)

    def get_readonly_fields(self, request: HttpRequest, obj: User | None = None) -> Any:
        # Only the admin flags are edited in the form (by superusers, who alone hold
        # accounts.change_user), never one's own; the rest changes through actions.
        if obj is not None and obj.pk == request.user.pk:
            return self.fields
        return tuple(name for name in self.fields if name not in ("is_staff", "is_superuser"))

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: User | None = None) -> bool:
        # A ban is a deactivation: the account, its polls and its history stay.
        return False

    def has_ban_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("accounts.ban_user")

    def has_moderate_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("accounts.moderate_user")

    def save_model(self, request: HttpRequest, obj: User, form: Any, change: bool) -> None:
        """Store the admin flags through accounts.services (the only fields edited here)."""
        run_sync(do_set_staff(obj.pk, obj.is_staff, obj.is_superuser))

    @admin.action(permissions=["ban"], description="Deactivate (ban) selected users (asks first)")
    def deactivate(self, request: HttpRequest, queryset: QuerySet[User]) -> TemplateResponse | None:
        users = list(queryset)
        page = ask_before_banning(self, request, "deactivate", [u.pk for u in users], users)
        if page is not None:
            return page
        staff = signed_in_staff(request)
        done, refused = 0, []
        for user in users:
            if not staff.may_ban(user):
                refused.append(str(user))
            elif run_sync(do_deactivate_user(user.pk)):
                self.log_change(request, user, "Deactivated (banned).")
                done += 1
        self.message_user(request, f"Deactivated {done} user(s).", messages.SUCCESS)
        if refused:
            self.message_user(
                request,
                f"Not yours to ban (yourself, or a superuser): {', '.join(refused)}.",
                messages.WARNING,
            )
        return None

    @admin.action(permissions=["ban"], description="Reactivate selected users")
    def reactivate(self, request: HttpRequest, queryset: QuerySet[User]) -> None:
        staff = signed_in_staff(request)
        done = 0
        for user in queryset:
            if staff.may_ban(user) and run_sync(do_reactivate_user(user.pk)):
                self.log_change(request, user, "Reactivated.")
                done += 1
        self.message_user(request, f"Reactivated {done} user(s).", messages.SUCCESS)

    @admin.action(permissions=["moderate"], description="Grant the moderator role (every poll)")
    def grant_moderator(
        self, request: HttpRequest, queryset: QuerySet[User]
    ) -> TemplateResponse | None:
        form = ModeratorGrantForm(request.POST if "apply" in request.POST else None)
        if not form.is_valid():
            return TemplateResponse(
                request,
                "admin/accounts/user/grant_moderator.html",
                {
                    **self.admin_site.each_context(request),
                    "title": "Grant the moderator role",
                    "opts": self.opts,
                    "form": form,
                    "users": queryset,
                    "action": "grant_moderator",
                    "action_checkbox_name": ACTION_CHECKBOX_NAME,
                    "media": self.media + form.media,
                },
            )
        until = form.cleaned_data["expires_at"]
        staff = signed_in_staff(request).as_actor()
        granted, already = 0, []
        for user in queryset:
            if run_sync(do_grant_moderator(user.pk, until, staff)):
                period = f"until {until.isoformat()}" if until else "until revoked"
                self.log_change(request, user, f"Granted the moderator role ({period}).")
                granted += 1
            else:
                already.append(str(user))
        self.message_user(request, f"{granted} user(s) are moderators now.", messages.SUCCESS)
        if already:
            self.message_user(
                request,
                f"Already moderators over that period (revoke first to change it): "
                f"{', '.join(already)}.",
                messages.WARNING,
            )
        return None

    @admin.action(permissions=["moderate"], description="Revoke the moderator role")
    def revoke_moderator(self, request: HttpRequest, queryset: QuerySet[User]) -> None:
        staff = signed_in_staff(request).as_actor()
        revoked = 0
        for user in queryset:
            if run_sync(do_revoke_moderator(user.pk, staff)):
                self.log_change(request, user, "Revoked the moderator role.")
                revoked += 1
        self.message_user(request, f"Revoked the role of {revoked} user(s).", messages.SUCCESS)
