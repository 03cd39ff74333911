"""Admin changelists that stay fast on tables of millions of rows.

Django's changelist counts every page twice by default: the filtered rows (for the
paginator) and the whole table (for "N total"). On a million users either count
costs more than the page itself. Here the total is not shown, and the paginator
counts exactly only up to EXACT_COUNT_LIMIT rows; past that it takes PostgreSQL's
planner estimate, which costs one EXPLAIN and is close enough to number the pages.
Facet counts (one count per filter choice) are off for the same reason.

Related-object filters never list every row of the other table either: ChosenFilter
offers only the object named in the URL (links from other pages lead there with it).
Searches across a relation (a poll's question or its creator's name) look the related
rows up first, so that each side is answered by its own index (matching_ids).
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.core.paginator import Paginator
from django.db import connections, models
from django.db.models import BigIntegerField, Func, QuerySet
from django.http import HttpRequest
from django.utils.functional import cached_property
from django.utils.text import smart_split, unescape_string_literal

from db.ids import MAX_ID_DIGITS

# Up to this many rows a changelist shows the exact count; a count this size is cheap.
EXACT_COUNT_LIMIT = 10_000
# Up to this many related rows a search matches are passed as a list of ids.
SEARCH_IDS_LIMIT = 1_000


def planner_estimate(queryset: QuerySet[Any]) -> int:
    """PostgreSQL's estimate of how many rows `queryset` returns (one EXPLAIN, no scan)."""
    sql, params = queryset.order_by().query.sql_with_params()
    with connections[queryset.db].cursor() as cursor:
        # The statement is Django's own compilation of the queryset; its parameters stay bound.
        cursor.execute(f"EXPLAIN (FORMAT JSON) {sql}", params)
        (plan,) = cursor.fetchone()
    return int(plan[0]["Plan"]["Plan Rows"])


class EstimatedCountPaginator(Paginator):
    """Exact counts for small results, the planner's estimate for large ones."""

    @cached_property
    def count(self) -> int:
        queryset = self.object_list
        if not isinstance(queryset, QuerySet):
            return len(queryset)
        exact = queryset.order_by()[: EXACT_COUNT_LIMIT + 1].count()
        if exact <= EXACT_COUNT_LIMIT:
            return exact
        return max(planner_estimate(queryset), exact)


class LargeTableAdmin(admin.ModelAdmin):
    """A ModelAdmin for tables too large to count on every page."""

    paginator = EstimatedCountPaginator
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER
    list_per_page = 100


class ChosenFilter(admin.SimpleListFilter):
    """Rows of one related object, offered once one is chosen (links lead here with it).

    Listing every poll or user as a choice would not scale, so the only choice shown is
    the one in the URL.
    """

    related: type[models.Model]
    field: str

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        value = request.GET.get(self.parameter_name or "", "")
        if not (value.isdigit() and len(value) <= MAX_ID_DIGITS):
            return []
        found = self.related._default_manager.filter(pk=int(value)).first()
        return [(value, str(found))] if found is not None else []

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        value = self.value()
        if not value:
            return queryset
        if not (value.isdigit() and len(value) <= MAX_ID_DIGITS):
            return queryset.none()
        return queryset.filter(**{self.field: int(value)})


class _Correlated(Func):
    """A correlated subquery: a value per outer row, never an aggregate of the outer query.

    In a grouped query it needs no GROUP BY entry of its own, only the outer columns it
    refers to (which a grouped changelist groups by anyway), so PostgreSQL computes it
    once per row shown rather than per group.
    """

    output_field = BigIntegerField()

    def get_group_by_cols(self) -> list[Any]:
        sources = self.get_source_expressions()
        return [col for source in sources for col in source.get_group_by_cols()]


class CorrelatedCount(_Correlated):
    """`count(*)` of the rows of `table` whose `column` equals the expression, per row.

    For changelist columns such as "polls created": a correlated subquery that an index
    on `table (column)` answers, computed only for the rows of the page shown.
    `table` and `column` are names from the code, never from a request.
    """

    template = (
        '(SELECT count(*) FROM "%(table)s" AS correlated'
        ' WHERE correlated."%(column)s" = %(expressions)s)'
    )

    def __init__(self, table: str, column: str, expression: Any) -> None:
        super().__init__(expression, table=table, column=column)


def search_words(search_term: str) -> list[str]:
    """The words of a search, as Django's admin splits them ("quoted phrases" kept)."""
    words = []
    for word in smart_split(search_term):
        if word.startswith(('"', "'")) and word[0] == word[-1]:
            word = unescape_string_literal(word)
        if word:
            words.append(word)
    return words


def matching_ids(queryset: QuerySet[Any]) -> list[Any] | QuerySet[Any]:
    """The primary keys `queryset` selects, for a filter `<relation>__in=`.

    A list when there are at most SEARCH_IDS_LIMIT: `column IN (1, 2, ...)` is answered by
    the column's index, also OR-ed with another indexed condition (one bitmap scan each).
    Past that, the queryset itself as a subquery, which is slower but complete.
    """
    ids = list(queryset.order_by().values_list("pk", flat=True)[: SEARCH_IDS_LIMIT + 1])
    if len(ids) <= SEARCH_IDS_LIMIT:
        return ids
    return queryset.order_by().values("pk")
