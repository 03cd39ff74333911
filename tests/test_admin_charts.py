"""The poll's page in the admin shows its counts and its last hour as server-rendered SVG."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest

from polls.charts import activity_chart, counts_bar_chart
from polls.services import do_create_poll
from tests.admin_client import make_admin
from tests.polls import db_counts
from tests.users import client_for, make_user
from tests.waiting import eventually

POLLS = "/admin/polls/poll/"


def widths(svg: str) -> list[float]:
    return [float(w) for w in re.findall(r'<rect x="[\d.]+" y="3" width="([\d.]+)"', svg)]


def test_bars_are_proportional_and_counts_are_written_out() -> None:
    svg = str(counts_bar_chart(["a", "b", "c"], [10, 5, 0]))
    assert widths(svg) == [320.0, 160.0, 0.0]
    for text in (">10 (67%)<", ">5 (33%)<", ">0 (0%)<"):
        assert text in svg
    assert str(counts_bar_chart(["a", "b"], [0, 0])).count(">0<") == 2  # no division by zero


def test_labels_are_escaped() -> None:
    svg = str(counts_bar_chart(['<script>alert("x")</script>', "ok"], [1, 2]))
    assert "<script>" not in svg
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in svg


def test_activity_columns_and_summary() -> None:
    per_minute = [0] * 58 + [3, 1]
    svg = str(activity_chart(per_minute, datetime(2026, 1, 1, 12, 0, tzinfo=UTC)))
    columns = re.findall(r'<rect x="([\d.]+)" y="[\d.]+" width="[\d.]+" height="([\d.]+)"', svg)
    assert [float(height) for _, height in columns] == [86.0, pytest.approx(86 / 3, abs=0.01)]
    assert "<title>11:59: 3</title>" in svg
    assert "4 votes in the last 60 minutes; busiest minute: 3 at 11:59 UTC." in svg
    assert ">11:01<" in svg and ">12:00 UTC<" in svg
    assert "no votes" in str(activity_chart([0] * 60, datetime(2026, 1, 1, tzinfo=UTC)))


@pytest.mark.usefixtures("vote_consumer")
async def test_the_polls_page_charts_its_counts_and_last_hour() -> None:
    staff = await make_admin()
    owner = await make_user()
    voters = [await make_user() for _ in range(3)]
    poll = await do_create_poll(owner, "Charted?", ["Yes", "<b>No</b>"], "public_vote")
    yes, no = poll.option_ids
    for voter, option in zip(voters, (yes, yes, no), strict=True):
        response = await client_for(voter).post(
            "/api/vote/submit",
            {"poll_id": poll.id, "vote_option_id": option},
            content_type="application/json",
        )
        assert response.status_code == 201, response.content
    assert await eventually(lambda: db_counts(poll.id), {yes: 2, no: 1}) == {yes: 2, no: 1}

    page = (await staff.client.get(f"{POLLS}{poll.id}/change/")).content.decode()
    assert page.count('class="feedapp-chart"') == 2
    assert ">2 (67%)<" in page and ">1 (33%)<" in page
    assert "&lt;b&gt;No&lt;/b&gt;" in page and "<b>No</b>" not in page
    # The three votes were cast within the last minute or two.
    assert "3 votes in the last 60 minutes" in page
    charts = re.findall(r"<svg [^>]*class=\"feedapp-chart\".*?</svg>", page, re.DOTALL)
    assert len(charts) == 2
    assert not any("<script" in chart for chart in charts), "no JavaScript in the charts"
