"""CI-sized versions of fault drills 1, 2 and 3 (bench/drills; docs/RELIABILITY.md).

The same scripts as the drills, against the test stack, with a few hundred votes: uvicorn
and consume_votes processes as production runs them, voters over HTTP from many source
addresses, a ledger of every answer, and at the end the ledger, the vote table,
vote_count, GET /api/vote/{id}, Valkey and the open streams must agree. Recovery times
are measured by the full drills; here every recovery must merely happen.
"""

from __future__ import annotations

import functools
from pathlib import Path

import pytest

from bench.drills.scenarios import (
    Report,
    Scale,
    Script,
    consumer_kills,
    kafka_outages,
    postgres_restarts,
    run_drill,
)
from bench.drills.world import World
from stack.profiles import get_profile

pytestmark = [pytest.mark.stack_control, pytest.mark.drill]

SMALL = Scale(users=60, polls=6, votes=5000, rate=30, streams=3, warmup=4, tail=4)


async def drill(name: str, script: Script, scale: Scale, tmp_path: Path) -> Report:
    world = World(get_profile("test"), "tests.settings", tmp_path / name, partitions=4)
    report = await run_drill(name, world, scale, script)
    print("\n".join(report.lines()))  # shown when a test fails
    return report


def assert_held(report: Report) -> None:
    findings = report.findings
    assert report.caught_up, report.lines()
    assert report.server_errors == 0, report.lines()
    assert report.unexpected_answers == 0, report.lines()
    assert (findings.lost, findings.doubled, findings.undercounted) == (0, 0, 0), report.lines()
    assert findings.unexpected == 0 and not findings.differences, report.lines()
    assert all(m.seconds is not None for m in report.measures), report.lines()


async def test_consumer_killed_twice_during_the_votes(tmp_path: Path) -> None:
    scale = Scale(users=60, polls=6, votes=900, rate=30, streams=3)
    report = await drill(
        "consumer-kill", functools.partial(consumer_kills, kills=2), scale, tmp_path
    )
    assert_held(report)
    assert report.statuses[201] > 0


async def test_kafka_stopped_then_frozen_while_votes_flow(tmp_path: Path) -> None:
    script = functools.partial(kafka_outages, seconds=6.0)
    report = await drill("kafka", script, SMALL, tmp_path)
    assert_held(report)
    assert report.statuses[503] > 0  # the outages were felt, and answered 503, never 500


async def test_postgres_restarted_under_submissions_and_during_catch_up(tmp_path: Path) -> None:
    script = functools.partial(postgres_restarts, down=2.0)
    report = await drill("postgres", script, SMALL, tmp_path)
    assert_held(report)
