"""`outreach enqueue engagement|hunt|campaign`: ad-hoc runs, and their refusals."""

from __future__ import annotations

import json
import sys
import types

import pytest

from storage.models import EngagementRun
from tests.cli.conftest import assert_refused, outreach


def test_enqueue_engagement_starts_a_run_now(db, clock):
    result = outreach("enqueue", "engagement", "--json")
    assert result.exit_code == 0, result.output
    started = json.loads(result.stdout)
    assert EngagementRun.get_by_id(started["run_id"]) is not None
    assert started["fire_time"] == clock.now().isoformat()


def test_enqueue_hunt_calls_the_hunts_feature_with_the_id(db, monkeypatch):
    # Given a hunts feature that records its calls
    calls: list[int] = []
    fake = types.ModuleType("producers.hunts")
    fake.enqueue_hunt = lambda hunt_id: calls.append(hunt_id) or {"hunt_id": hunt_id}  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "producers.hunts", fake)
    result = outreach("enqueue", "hunt", "7")
    assert result.exit_code == 0, result.output
    assert calls == [7]
    assert result.stdout.strip() == "hunt_id=7"


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["hunt", "999999"], "hunt 999999 does not exist"),
        (["campaign", "999999"], "campaign 999999"),
        (["hunt", "seven"], "not a valid integer"),
        (["campaign"], "Missing argument"),
        (["nothing"], "No such command"),
    ],
)
def test_bad_ids_are_refused_in_one_line(db, args, fragment):
    assert_refused(outreach("enqueue", *args), fragment)


@pytest.mark.parametrize(
    ("module", "args"),
    [
        ("producers.hunts", ["hunt", "1"]),
        ("producers.campaigns", ["campaign", "1"]),
        ("producers.engagement", ["engagement"]),
    ],
)
def test_a_feature_not_installed_is_one_clear_line(db, monkeypatch, module, args):
    monkeypatch.setitem(sys.modules, module, None)  # importing it now fails
    assert_refused(outreach("enqueue", *args), f"{module} is not installed")
