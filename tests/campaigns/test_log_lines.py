"""What the campaign run path writes to the JSON log: times as ISO 8601, never Python reprs."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from worker.campaigns.control import run_manually
from worker.logging import configure_logging


@pytest.fixture
def log_stream() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    root = logging.getLogger()
    saved_handlers, saved_level = root.handlers[:], root.level
    configure_logging("INFO", stream)
    yield stream
    root.handlers = saved_handlers
    root.setLevel(saved_level)


def test_a_campaign_started_by_hand_logs_its_start_time_as_iso_8601(
    log_stream, db, clock, make_list, make_campaign
):
    # Given a draft campaign; when its owner runs it (what `outreach campaign run` does)
    campaign = make_campaign(make_list(2))
    run_manually(campaign.id, campaign.owner_id)
    # Then the status line gives the start time as ISO 8601
    lines = [json.loads(line) for line in log_stream.getvalue().splitlines() if line.strip()]
    [status] = [line for line in lines if line["event"] == "campaign.status"]
    assert status["started_at"] == clock.now().isoformat()
    assert "datetime.datetime(" not in log_stream.getvalue()
