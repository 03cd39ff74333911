"""The polls admin: polls with their live counts and grants, and the grants themselves.

Nothing here writes rows itself: a poll is deleted by polls.services (the cascade, the
cached counts, the streams' `poll_deleted`, as for the API) and a grant is revoked by
ending its period there. Polls are created and shared through the API only.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.contrib.admin.options import IS_POPUP_VAR
from django.core.exceptions import PermissionDenied
from django.db.models import Q, QuerySet
from django.db.models.functions import Now
from django.http import HttpRequest, HttpResponseRedirect
from django.urls import reverse
from django.utils.html import format_html
from django.utils.safestring import SafeString

from accounts.admin import signed_in_staff
from accounts.models import User
from db.sync_bridge import run_sync
from feedapp.changelists import ChosenFilter, LargeTableAdmin, matching_ids, search_words
from feedapp.errors import Forbidden
from polls.charts import activity_chart, counts_bar_chart
from polls.errors import PollNotFound
from polls.models import Poll, PollGrant, VoteOption
from polls.services import do_delete_poll_as_staff, do_revoke_grants
from votes.activity import votes_per_minute
from votes.counts import read_counts


def live_counts(poll_id: int) -> dict[int, int]:
    """Option id -> votes of a poll, from Valkey (PostgreSQL on a miss)."""
    counts = run_sync(read_counts(poll_id))
    if counts is None:
        return {}
    return dict(zip(counts.option_ids, counts.vote_counts, strict=True))


def _in_force() -> Q:
    now = Now()
    return Q(granted_at__lte=now) & (Q(expires_at__isnull=True) | Q(expires_at__gt=now))


class ExpiredFilter(admin.SimpleListFilter):
    title = "expired"
    parameter_name = "expired"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("yes", "Expired"), ("no", "Open")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        # The database's clock, as for the API's own expiry checks.
        if self.value() == "yes":
            return queryset.filter(expires_at__lte=Now())
        if self.value() == "no":
            return queryset.filter(Q(expires_at__isnull=True) | Q(expires_at__gt=Now()))
        return queryset


class PollFilter(ChosenFilter):
    title = "poll"
    parameter_name = "poll"
    related = Poll
    field = "poll_id"


class GranteeFilter(ChosenFilter):
    title = "user"
    parameter_name = "user"
    related = User
    field = "user_id"


class CreatorFilter(ChosenFilter):
    title = "creator"
    parameter_name = "creator"
    related = User
    field = "creator_id"


class HiddenFilter(admin.SimpleListFilter):
    title = "hidden by reports"
    parameter_name = "hidden"
    # The poll's hidden_at, as the filtered model reaches it.
    field = "hidden_at"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("yes", "Hidden"), ("no", "Shown")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        if self.value() in ("yes", "no"):
            return queryset.filter(**{f"{self.field}__isnull": self.value() == "no"})
        return queryset


def search_polls(queryset: QuerySet[Any], search_term: str, prefix: str = "") -> QuerySet[Any]:
    """Rows whose poll's question, or its creator's username, contains every word.

    Django would OR a LIKE on the poll with one on the joined user, which no index
    answers; the creators are looked up first instead (their own trigram index).
    """
    for word in search_words(search_term):
        creators = matching_ids(User.objects.filter(username__icontains=word))
        queryset = queryset.filter(
            Q(**{f"{prefix}question__icontains": word}) | Q(**{f"{prefix}creator_id__in": creators})
        )
    return queryset


def delete_poll_as_staff(request: HttpRequest, poll_id: int) -> None:
    """Delete a poll through the service the API uses: cascade, counts dropped, streams told."""
    try:
        run_sync(do_delete_poll_as_staff(poll_id, signed_in_staff(request).as_actor()))
    except PollNotFound:
        # Deleted by someone else meanwhile, whose call sent the signal: gone as asked.
        pass
    except Forbidden:
        raise PermissionDenied from None


class ScopeFilter(admin.SimpleListFilter):
    title = "scope"
    parameter_name = "scope"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [
            ("global", "One user, every poll (moderators)"),
            ("user", "One user, one poll"),
            ("everyone", "Everyone, one poll (public polls)"),
        ]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        if self.value() == "global":
            return queryset.filter(poll__isnull=True)
        if self.value() == "user":
            return queryset.filter(poll__isnull=False, user__isnull=False)
        if self.value() == "everyone":
            return queryset.filter(user__isnull=True)
        return queryset


class StateFilter(admin.SimpleListFilter):
    title = "in force"
    parameter_name = "state"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("active", "In force"), ("ended", "Ended"), ("upcoming", "Not started")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        if self.value() == "active":
            return queryset.filter(_in_force())
        if self.value() == "ended":
            return queryset.filter(expires_at__lte=Now())
        if self.value() == "upcoming":
            return queryset.filter(granted_at__gt=Now())
        return queryset


class _ReadOnlyInline(admin.TabularInline):
    extra = 0
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class VoteOptionInline(_ReadOnlyInline):
    model = VoteOption
    fields = ("position", "text", "votes")
    readonly_fields = fields
    counts: dict[int, int]

    def get_formset(self, request: HttpRequest, obj: Any = None, **kwargs: Any) -> Any:
        # Inline instances are made for each request: these are this page's counts.
        self.counts = live_counts(obj.pk) if obj is not None else {}
        return super().get_formset(request, obj, **kwargs)

    @admin.display(description="votes (live)")
    def votes(self, option: VoteOption) -> int | str:
        return self.counts.get(option.pk, "-")


class PollGrantInline(_ReadOnlyInline):
    model = PollGrant
    fk_name = "poll"
    fields = ("role", "grantee", "granted_at", "expires_at", "granted_by", "in_force")
    readonly_fields = fields
    show_change_link = True
    verbose_name_plural = "grants on this poll"

    @admin.display(description="user")
    def grantee(self, grant: PollGrant) -> str:
        return str(grant.user) if grant.user_id is not None else "everyone"

    @admin.display(boolean=True, description="in force")
    def in_force(self, grant: PollGrant) -> bool:
        return grant.in_force


@admin.register(Poll)
class PollAdmin(LargeTableAdmin):
    list_display = (
        "id",
        "short_question",
        "creator",
        "poll_perms",
        "total_votes",
        "created_at",
        "expires_at",
        "expired",
        "hidden",
    )
    list_display_links = ("id", "short_question")
    list_select_related = ("creator", "counts")
    list_filter = (ExpiredFilter, "poll_perms", HiddenFilter, CreatorFilter)
    search_fields = ("question", "creator__username")
    search_help_text = "Words of the question, or of the creator's username."
    # Sorting by another column would sort every poll row (ids follow creation, so id is
    # also the creation order); the total votes are one narrow row per poll.
    sortable_by = ("id", "total_votes")
    fields = (
        "id",
        "question",
        "creator",
        "poll_perms",
        "created_at",
        "expires_at",
        "hidden_at",
        "grants",
        "reports",
        "counts_chart",
        "activity",
    )
    readonly_fields = fields
    inlines = (VoteOptionInline, PollGrantInline)

    def get_queryset(self, request: HttpRequest) -> QuerySet[Poll]:
        # Every poll has its counts row (made with it). Saying so makes the join an inner
        # one, which leaves PostgreSQL free to read polls in the order of either table.
        return super().get_queryset(request).filter(counts__isnull=False)

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[Poll], search_term: str
    ) -> tuple[QuerySet[Poll], bool]:
        return search_polls(queryset, search_term), False

    @admin.display(description="votes", ordering="counts__total_votes")
    def total_votes(self, poll: Poll) -> int:
        # Kept by the vote consumer next to the counts version (votes.models.PollCounts).
        counts = getattr(poll, "counts", None)
        return counts.total_votes if counts is not None else 0

    @admin.display(boolean=True, description="hidden")
    def hidden(self, poll: Poll) -> bool:
        return poll.hidden_at is not None

    @admin.display(description="question", ordering="question")
    def short_question(self, poll: Poll) -> str:
        return poll.question if len(poll.question) <= 80 else f"{poll.question[:79]}…"

    @admin.display(boolean=True, description="expired")
    def expired(self, poll: Poll) -> bool:
        return poll.expired

    @admin.display(description="all grants")
    def grants(self, poll: Poll) -> SafeString:
        url = reverse("admin:polls_pollgrant_changelist")
        return format_html('<a href="{}?poll={}">grants of this poll</a>', url, poll.pk)

    @admin.display(description="counts (live)")
    def counts_chart(self, poll: Poll) -> SafeString:
        counts = live_counts(poll.pk)
        options = list(poll.options.order_by("position"))
        return counts_bar_chart(
            [option.text for option in options], [counts.get(option.pk, 0) for option in options]
        )

    @admin.display(description="votes per minute, last hour")
    def activity(self, poll: Poll) -> SafeString:
        recent = run_sync(votes_per_minute(poll.pk, minutes=60))
        return activity_chart(recent.per_minute, recent.last_minute)

    @admin.display(description="reports")
    def reports(self, poll: Poll) -> SafeString:
        url = reverse("admin:moderation_report_changelist")
        return format_html('<a href="{}?poll={}">reports of this poll</a>', url, poll.pk)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Poll | None = None) -> bool:
        # Polls are changed through the API only; here they are viewed and deleted.
        return False

    def get_deleted_objects(self, objs: Any, request: HttpRequest) -> Any:
        deleted, model_count, _perms_needed, protected = super().get_deleted_objects(objs, request)
        # The database deletes the poll's options, grants, votes and counts with it: the
        # right to delete polls, which the view or action checked, is all it takes.
        return deleted, model_count, set(), protected

    def delete_model(self, request: HttpRequest, obj: Poll) -> None:
        """Delete through the service the API uses: cascade, counts dropped, streams told."""
        delete_poll_as_staff(request, obj.pk)

    def response_delete(self, request: HttpRequest, obj_display: str, obj_id: int) -> Any:
        response = super().response_delete(request, obj_display, obj_id)
        if IS_POPUP_VAR in request.POST:
            return response
        # Django returns to the index when the list is not changeable; this one is viewed.
        return HttpResponseRedirect(reverse("admin:polls_poll_changelist"))

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Poll]) -> None:
        """Delete each poll through the service, one transaction and one signal each."""
        for poll in queryset:
            self.delete_model(request, poll)


@admin.register(PollGrant)
class PollGrantAdmin(LargeTableAdmin):
    list_display = (
        "id",
        "role",
        "grantee",
        "scope",
        "granted_at",
        "expires_at",
        "granted_by",
        "in_force",
    )
    list_select_related = ("user", "poll", "granted_by")
    list_filter = ("role", StateFilter, ScopeFilter, PollFilter, GranteeFilter)
    search_fields = ("user__username", "poll__question")
    search_help_text = "Words of the user's username or of the poll's question."
    sortable_by = ("id",)
    fields = ("id", "role", "user", "poll", "granted_at", "expires_at", "granted_by", "in_force")
    readonly_fields = fields
    actions = ("revoke",)

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[PollGrant], search_term: str
    ) -> tuple[QuerySet[PollGrant], bool]:
        # Users and polls are looked up first, each with its own index, rather than
        # OR-ing LIKEs over two joined tables, which reads every grant.
        for word in search_words(search_term):
            users = matching_ids(User.objects.filter(username__icontains=word))
            polls = matching_ids(Poll.objects.filter(question__icontains=word))
            queryset = queryset.filter(Q(user_id__in=users) | Q(poll_id__in=polls))
        return queryset, False

    @admin.display(description="user", ordering="user__username")
    def grantee(self, grant: PollGrant) -> str:
        return str(grant.user) if grant.user_id is not None else "everyone"

    @admin.display(description="poll", ordering="poll_id")
    def scope(self, grant: PollGrant) -> str:
        return str(grant.poll) if grant.poll_id is not None else "every poll"

    @admin.display(boolean=True, description="in force")
    def in_force(self, grant: PollGrant) -> bool:
        return grant.in_force

    def has_add_permission(self, request: HttpRequest) -> bool:
        # Roles are granted through the API (per poll) or the users admin (moderators).
        return False

    def has_change_permission(self, request: HttpRequest, obj: PollGrant | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: PollGrant | None = None) -> bool:
        # Grants are history: revoking ends their period, nothing deletes them.
        return False

    def has_revoke_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("polls.revoke_pollgrant")

    @admin.action(permissions=["revoke"], description="Revoke selected grants (they end now)")
    def revoke(self, request: HttpRequest, queryset: QuerySet[PollGrant]) -> None:
        grants = list(queryset)
        staff = signed_in_staff(request).as_actor()
        ended = set(run_sync(do_revoke_grants([grant.pk for grant in grants], staff)))
        for grant in grants:
            if grant.pk in ended:
                self.log_change(request, grant, "Revoked: the grant ended now.")
        if ended:
            self.message_user(request, f"Revoked {len(ended)} grant(s).", messages.SUCCESS)
        if len(ended) < len(grants):
            self.message_user(
                request,
                f"{len(grants) - len(ended)} grant(s) were not in force; left as they are.",
                messages.WARNING,
            )
