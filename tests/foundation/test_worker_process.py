"""A message queued through the outbox on real Redis is delivered by a real `dramatiq` worker."""

from __future__ import annotations

from storage.db import database
from storage.models import OutboxMessage
from tests.processes import wait_until, worker_process
from worker.outbox import queue_message


def test_log_channel_delivery_by_a_procfile_worker(live_services, tmp_path):
    # Given a message queued through the outbox on real Redis and PostgreSQL
    with database.connection_context():
        row = queue_message("e2e:log:1", "log", "+33612345678", "hello from the outbox")
    # When the Procfile's worker runs
    with worker_process(live_services, tmp_path / "worker.log"):

        def sent() -> bool:
            with database.connection_context():
                return OutboxMessage.get_by_id(row.id).status == "sent"

        wait_until(sent, timeout=60, what="the outbox row to be sent")
    # Then the worker's JSON log shows the send, with the phone number masked
    log = (tmp_path / "worker.log").read_text()
    assert '"event": "message.sent"' in log
    assert "+33612345678" not in log
