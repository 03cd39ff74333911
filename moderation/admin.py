"""The moderation admin: the review queue of reported polls, and every report filed.

The queue lists the polls that have open reports, newest report first (or most
reported, by its column), and offers three actions, each in bulk and each through a
service: dismiss the reports (moderation.services, which also shows a hidden poll
again), delete the poll (polls.services, as the polls admin and the API do: open
streams get `poll_deleted`), and ban the poll's creator (moderation.services, which
bans through accounts.services and resolves the reports on all their polls). Every
action is written to the admin log of the poll it concerns (and of a banned user),
so a poll's history page tells what moderators did with it.

Nothing here edits a report: reports are filed through the API and resolved by the
queue's actions.
"""

from __future__ import annotations

from typing import Any, get_args

from django.contrib import admin, messages
from django.contrib.admin.models import DELETION, LogEntry
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from accounts.admin import ask_before_banning, signed_in_staff
from accounts.models import User
from db.sync_bridge import run_sync
from feedapp.changelists import ChosenFilter, LargeTableAdmin
from feedapp.errors import Forbidden
from moderation.models import Report, ReportedPoll
from moderation.rows import Reason
from moderation.services import do_ban_creator, do_dismiss_reports
from polls.admin import HiddenFilter, PollFilter, delete_poll_as_staff, search_polls
from polls.models import Poll

REASONS: tuple[Reason, ...] = get_args(Reason)
# The newest open reports a poll's page in the queue lists; the rest are a link away.
REPORTS_SHOWN = 50


def _short(text: str, length: int) -> str:
    return text if len(text) <= length else f"{text[: length - 1]}…"


def _by_reason(entry: ReportedPoll) -> str:
    return ", ".join(f"{reason}: {count}" for reason, count in entry.by_reason().items())


class ReasonFilter(admin.SimpleListFilter):
    title = "open reports for"
    parameter_name = "reason"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [(reason, reason) for reason in REASONS]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        if self.value() in REASONS:
            return queryset.filter(**{f"open_{self.value()}__gt": 0})
        return queryset


class QueueHiddenFilter(HiddenFilter):
    field = "poll__hidden_at"


@admin.register(ReportedPoll)
class ReviewQueueAdmin(LargeTableAdmin):
    list_display = (
        "poll_id",
        "question",
        "creator",
        "visibility",
        "total_votes",
        "open_reports",
        "by_reason",
        "first_reported",
        "last_reported",
        "hidden",
    )
    list_display_links = ("poll_id", "question")
    list_select_related = ("poll__creator", "poll__counts")
    list_filter = (ReasonFilter, QueueHiddenFilter)
    search_fields = ("poll__question", "poll__creator__username")
    search_help_text = "Words of the question, or of the creator's username."
    sortable_by = ("poll_id", "total_votes", "open_reports", "first_reported", "last_reported")
    fields = (
        "poll_id",
        "question",
        "creator",
        "visibility",
        "created_at",
        "expires_at",
        "hidden_at",
        "poll_page",
        "open_reports",
        "by_reason",
        "open_reports_list",
    )
    readonly_fields = fields
    actions = ("dismiss_reports", "delete_selected", "ban_creators")

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[ReportedPoll], search_term: str
    ) -> tuple[QuerySet[ReportedPoll], bool]:
        return search_polls(queryset, search_term, prefix="poll__"), False

    # --- Columns and fields ---------------------------------------------------------------

    @admin.display(description="poll", ordering="poll_id")
    def poll_id(self, entry: ReportedPoll) -> int:
        return int(entry.pk)

    @admin.display(description="question")
    def question(self, entry: ReportedPoll) -> str:
        return _short(entry.poll.question, 80)

    @admin.display(description="creator")
    def creator(self, entry: ReportedPoll) -> str:
        return str(entry.poll.creator)

    @admin.display(description="visibility")
    def visibility(self, entry: ReportedPoll) -> str:
        return str(entry.poll.poll_perms)

    @admin.display(description="created at")
    def created_at(self, entry: ReportedPoll) -> Any:
        return entry.poll.created_at

    @admin.display(description="expires at")
    def expires_at(self, entry: ReportedPoll) -> Any:
        return entry.poll.expires_at

    @admin.display(description="hidden since")
    def hidden_at(self, entry: ReportedPoll) -> Any:
        return entry.poll.hidden_at

    @admin.display(description="votes", ordering="poll__counts__total_votes")
    def total_votes(self, entry: ReportedPoll) -> int:
        counts = getattr(entry.poll, "counts", None)
        return counts.total_votes if counts is not None else 0

    @admin.display(description="by reason")
    def by_reason(self, entry: ReportedPoll) -> str:
        return _by_reason(entry)

    @admin.display(boolean=True, description="hidden")
    def hidden(self, entry: ReportedPoll) -> bool:
        return entry.poll.hidden_at is not None

    @admin.display(description="poll")
    def poll_page(self, entry: ReportedPoll) -> SafeString:
        page = reverse("admin:polls_poll_change", args=[entry.pk])
        reports = reverse("admin:moderation_report_changelist")
        return format_html(
            '<a href="{}">live counts and grants</a> · <a href="{}?poll={}">all its reports</a>',
            page,
            reports,
            entry.pk,
        )

    @admin.display(description="newest open reports")
    def open_reports_list(self, entry: ReportedPoll) -> SafeString:
        reports = list(
            Report.objects.filter(poll_id=entry.pk, resolved_at__isnull=True)
            .select_related("reporter")
            .order_by("-id")[:REPORTS_SHOWN]
        )
        rows = format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            (
                (f"{report.created_at:%Y-%m-%d %H:%M}", report.reporter, report.reason, report.note)
                for report in reports
            ),
        )
        return format_html(
            "<table><thead><tr><th>reported at</th><th>by</th><th>reason</th><th>note</th>"
            "</tr></thead><tbody>{}</tbody></table>",
            rows,
        )

    # --- Rights -----------------------------------------------------------------------------

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # Viewed here; changed only by the actions.
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return request.user.has_perm("polls.delete_poll")

    def has_dismiss_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("moderation.dismiss_report")

    def has_ban_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("accounts.ban_user")

    def history_view(self, request: HttpRequest, object_id: str, extra_context: Any = None) -> Any:
        # The queue's actions are logged on the poll itself: its history is there.
        return HttpResponseRedirect(reverse("admin:polls_poll_history", args=[object_id]))

    def delete_view(self, request: HttpRequest, object_id: str, extra_context: Any = None) -> Any:
        # One poll is deleted by the action here, or on its own page in the polls admin.
        return HttpResponseRedirect(reverse("admin:polls_poll_delete", args=[object_id]))

    # --- Actions ----------------------------------------------------------------------------

    def get_actions(self, request: HttpRequest) -> dict[str, Any]:
        actions: dict[str, Any] = super().get_actions(request)
        if "delete_selected" in actions:
            # Django's own confirmation page, which posts back to this name.
            function, name, _ = actions["delete_selected"]
            actions["delete_selected"] = (function, name, "Delete the polls (asks first)")
        return actions

    @admin.action(permissions=["dismiss"], description="Dismiss the reports (and show the polls)")
    def dismiss_reports(self, request: HttpRequest, queryset: QuerySet[ReportedPoll]) -> None:
        polls = {entry.pk: entry.poll for entry in queryset.select_related("poll")}
        staff = signed_in_staff(request).as_actor()
        try:
            outcome = run_sync(do_dismiss_reports(list(polls), staff))
        except Forbidden:
            raise PermissionDenied from None
        for poll_id, poll in polls.items():
            dismissed = outcome.reports.get(poll_id, 0)
            shown = poll_id in outcome.unhidden
            if dismissed or shown:
                message = f"Dismissed {dismissed} open report(s)."
                if shown:
                    message += " Shown to the public again."
                self.log_change(request, poll, message)
        self.message_user(
            request,
            f"Dismissed {outcome.total} report(s) on {len(outcome.reports)} poll(s).",
            messages.SUCCESS,
        )

    def get_deleted_objects(self, objs: Any, request: HttpRequest) -> Any:
        # The polls and their open reports, without listing every report, option and
        # grant (a much-reported poll has thousands). The service deletes them all; the
        # right to delete polls, which the action checked, is all it takes.
        entries = list(objs)
        listed = [f"{entry.poll} ({_by_reason(entry)})" for entry in entries]
        counts = {
            "polls": len(entries),
            "open reports": sum(entry.open_reports for entry in entries),
        }
        return listed, counts, set(), []

    def log_deletions(self, request: HttpRequest, queryset: Any) -> Any:
        # Filed under each poll's own history, with what the users had reported.
        staff = signed_in_staff(request)
        return [
            LogEntry.objects.log_actions(
                user_id=staff.pk,
                queryset=[entry.poll],
                action_flag=DELETION,
                change_message=f"Deleted from the review queue ({_by_reason(entry)}).",
                single_object=True,
            )
            for entry in queryset
        ]

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[ReportedPoll]) -> None:
        """Delete each poll through polls.services: its reports go with it."""
        for entry in queryset:
            delete_poll_as_staff(request, entry.pk)

    def delete_model(self, request: HttpRequest, obj: ReportedPoll) -> None:
        delete_poll_as_staff(request, obj.pk)

    @admin.action(
        permissions=["ban"], description="Ban the creators (resolves all their reports; asks first)"
    )
    def ban_creators(
        self, request: HttpRequest, queryset: QuerySet[ReportedPoll]
    ) -> TemplateResponse | None:
        entries = list(queryset.select_related("poll__creator"))
        creators = {entry.poll.creator_id: entry.poll.creator for entry in entries}
        page = ask_before_banning(
            self, request, "ban_creators", [entry.pk for entry in entries], list(creators.values())
        )
        if page is not None:
            return page
        staff = signed_in_staff(request)
        banned, refused = [], []
        for creator in creators.values():
            if not staff.may_ban(creator):
                refused.append(str(creator))
                continue
            try:
                outcome = run_sync(do_ban_creator(creator.pk, staff.as_actor()))
            except Forbidden:
                raise PermissionDenied from None
            resolved = outcome.resolved
            if outcome.banned:
                self.log_change(
                    request,
                    creator,
                    f"Deactivated (banned) from the review queue; resolved {resolved.total}"
                    f" report(s) on {len(resolved.reports)} poll(s).",
                )
            for poll in Poll.objects.filter(pk__in=list(resolved.reports)):
                self.log_change(
                    request,
                    poll,
                    f"Resolved {resolved.reports[poll.pk]} open report(s): creator banned.",
                )
            banned.append(str(creator))
        if banned:
            self.message_user(
                request,
                f"Banned {len(banned)} creator(s): {', '.join(banned)}.",
                messages.SUCCESS,
            )
        if refused:
            self.message_user(
                request,
                f"Not yours to ban (yourself, or a superuser): {', '.join(refused)}.",
                messages.WARNING,
            )
        return None


class OpenFilter(admin.SimpleListFilter):
    title = "state"
    parameter_name = "state"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("open", "Open"), ("resolved", "Resolved")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        if self.value() in ("open", "resolved"):
            return queryset.filter(resolved_at__isnull=self.value() == "open")
        return queryset


class ReporterFilter(ChosenFilter):
    title = "reporter"
    parameter_name = "reporter"
    related = User
    field = "reporter_id"


@admin.register(Report)
class ReportAdmin(LargeTableAdmin):
    list_display = (
        "id",
        "poll_link",
        "reporter",
        "reason",
        "short_note",
        "created_at",
        "is_open",
        "resolution",
        "resolved_by",
        "resolved_at",
    )
    list_select_related = ("poll", "reporter", "resolved_by")
    list_filter = (OpenFilter, "reason", "resolution", PollFilter, ReporterFilter)
    fields = (
        "id",
        "poll",
        "reporter",
        "reason",
        "note",
        "created_at",
        "resolution",
        "resolved_by",
        "resolved_at",
    )
    readonly_fields = fields

    @admin.display(description="poll", ordering="poll_id")
    def poll_link(self, report: Report) -> SafeString:
        url = reverse("admin:polls_poll_change", args=[report.poll_id])
        return format_html('<a href="{}">{}</a>', url, report.poll)

    @admin.display(description="note")
    def short_note(self, report: Report) -> str:
        return _short(report.note or "", 60)

    @admin.display(boolean=True, description="open")
    def is_open(self, report: Report) -> bool:
        return report.is_open

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # Reports are history: resolved by the queue's actions, gone only with their poll.
        return False
