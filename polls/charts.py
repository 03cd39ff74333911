"""Small server-rendered SVG charts for the admin: no JavaScript, numbers also as text.

Every text that reaches the markup (option labels are user input) goes through
`format_html`, which escapes it; SVG is XML, and HTML's escapes are valid there.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

BAR_HEIGHT = 22
LABEL_WIDTH = 220
BAR_AREA = 320
VALUE_WIDTH = 70
LABEL_CHARS = 32


def _short(text: str, limit: int = LABEL_CHARS) -> str:
    return text if len(text) <= limit else f"{text[: limit - 1]}…"


def counts_bar_chart(labels: Sequence[str], counts: Sequence[int]) -> SafeString:
    """One horizontal bar per option, its count written beside it."""
    total = sum(counts)
    peak = max(counts, default=0) or 1
    width = LABEL_WIDTH + BAR_AREA + VALUE_WIDTH
    height = BAR_HEIGHT * max(len(counts), 1) + 4
    rows = format_html_join(
        "",
        '<g transform="translate(0,{})">'
        '<text x="{}" y="15" text-anchor="end" font-size="12">{}<title>{}</title></text>'
        '<rect x="{}" y="3" width="{}" height="{}" fill="#417690"></rect>'
        '<text x="{}" y="15" font-size="12">{}</text>'
        "</g>",
        (
            (
                i * BAR_HEIGHT,
                LABEL_WIDTH - 8,
                _short(label),
                label,
                LABEL_WIDTH,
                round(BAR_AREA * count / peak, 1),
                BAR_HEIGHT - 6,
                LABEL_WIDTH + round(BAR_AREA * count / peak, 1) + 6,
                _percent_label(count, total),
            )
            for i, (label, count) in enumerate(zip(labels, counts, strict=True))
        ),
    )
    return format_html(
        '<svg xmlns="http://www.w3.org/2000/svg" class="feedapp-chart" role="img" '
        'width="{}" height="{}" viewBox="0 0 {} {}" aria-label="{}">{}</svg>',
        width,
        height,
        width,
        height,
        f"Votes per option, {total} in all",
        rows,
    )


def _percent_label(count: int, total: int) -> str:
    return f"{count} ({100 * count / total:.0f}%)" if total else str(count)


ACTIVITY_WIDTH = 480
ACTIVITY_HEIGHT = 90
AXIS_HEIGHT = 16


def activity_chart(per_minute: Sequence[int], last_minute: datetime) -> SafeString:
    """Votes per minute, oldest first, as columns; the newest minute starts at `last_minute`.

    The busiest minute and the total are written as text below the columns.
    """
    minutes = len(per_minute)
    peak = max(per_minute, default=0)
    scale = (ACTIVITY_HEIGHT - 4) / (peak or 1)
    column = ACTIVITY_WIDTH / max(minutes, 1)
    columns = format_html_join(
        "",
        '<rect x="{}" y="{}" width="{}" height="{}" fill="#79aec8"><title>{}: {}</title></rect>',
        (
            (
                round(i * column, 2),
                round(ACTIVITY_HEIGHT - n * scale, 2),
                round(max(column - 1, 1), 2),
                round(n * scale, 2),
                (last_minute - timedelta(minutes=minutes - 1 - i)).strftime("%H:%M"),
                n,
            )
            for i, n in enumerate(per_minute)
            if n
        ),
    )
    first = last_minute - timedelta(minutes=max(minutes - 1, 0))
    axis_y = ACTIVITY_HEIGHT + AXIS_HEIGHT - 4
    busiest = (
        f"busiest minute: {peak} at "
        f"{(first + timedelta(minutes=list(per_minute).index(peak))).strftime('%H:%M')} UTC"
        if peak
        else "no votes"
    )
    return format_html(
        '<svg xmlns="http://www.w3.org/2000/svg" class="feedapp-chart" role="img" '
        'width="{}" height="{}" viewBox="0 0 {} {}" aria-label="{}">'
        '<line x1="0" y1="{}" x2="{}" y2="{}" stroke="#999"></line>{}'
        '<text x="0" y="{}" font-size="11">{}</text>'
        '<text x="{}" y="{}" font-size="11" text-anchor="end">{} UTC</text>'
        "</svg>"
        "<p>{} votes in the last {} minutes; {}.</p>",
        ACTIVITY_WIDTH,
        ACTIVITY_HEIGHT + AXIS_HEIGHT,
        ACTIVITY_WIDTH,
        ACTIVITY_HEIGHT + AXIS_HEIGHT,
        f"Votes per minute over the last {minutes} minutes",
        ACTIVITY_HEIGHT,
        ACTIVITY_WIDTH,
        ACTIVITY_HEIGHT,
        columns,
        axis_y,
        first.strftime("%H:%M"),
        ACTIVITY_WIDTH,
        axis_y,
        last_minute.strftime("%H:%M"),
        sum(per_minute),
        minutes,
        busiest,
    )
