"""`outreach dlq list|requeue` on the real Redis, with messages that really died."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator

import dramatiq
import pytest

from tests.cli.conftest import assert_refused, outreach
from tests.processes import wait_until

pytestmark = pytest.mark.redis

QUEUE = "cli-dlq"


class Flaky:
    """An actor that fails (no retries) until told to work; records what it processed."""

    def __init__(self, broker: dramatiq.Broker) -> None:
        self.broker = broker
        self.working = False
        self.done: list[int] = []
        # One retry, soon: the body that dies then carries the first failure's traceback.
        self.actor = dramatiq.actor(
            self.run,
            broker=broker,
            actor_name="flaky",
            queue_name=QUEUE,
            max_retries=1,
            min_backoff=10,
            max_backoff=20,
        )

    def run(self, item_id: int) -> None:
        if not self.working:
            raise RuntimeError(f"item {item_id} exploded")
        self.done.append(item_id)

    def work_until(self, condition: Callable[[], bool], what: str) -> None:
        worker = dramatiq.Worker(self.broker, worker_threads=1, worker_timeout=100)
        worker.start()
        try:
            wait_until(condition, timeout=30, what=what)
        finally:
            worker.stop()


def dead_count(broker) -> int:
    return broker.client.zcard(f"{broker.namespace}:{QUEUE}.XQ")


@pytest.fixture
def flaky(redis_broker) -> Iterator[Flaky]:
    actor = Flaky(redis_broker)
    yield actor
    # Later tests move every declared actor to their own broker: leave none behind.
    redis_broker.actors.pop("flaky", None)


@pytest.fixture
def two_dead(flaky, redis_broker) -> list[str]:
    """Two messages that failed and went to the dead-letter queue; their message ids."""
    ids = [flaky.actor.send(41).message_id, flaky.actor.send(42).message_id]
    flaky.work_until(lambda: dead_count(redis_broker) == 2, "two dead letters")
    return ids


def test_list_shows_each_dead_message_with_its_error(two_dead):
    result = outreach("dlq", "list", "--json")
    assert result.exit_code == 0, result.output
    listed = json.loads(result.stdout)
    assert sorted(d["message_id"] for d in listed) == sorted(two_dead)
    by_arg = {d["args"][0]: d for d in listed}
    assert by_arg[42]["actor"] == "flaky" and by_arg[42]["queue"] == QUEUE
    assert "item 42 exploded" in by_arg[42]["error"]
    table = outreach("dlq", "list")
    assert table.exit_code == 0 and "flaky" in table.stdout


def test_requeue_one_puts_a_clean_copy_back_and_it_runs(two_dead, flaky, redis_broker):
    # When an operator requeues the second message by its id
    result = outreach("dlq", "requeue", two_dead[1])
    assert result.exit_code == 0, result.output
    assert f"requeued {two_dead[1]}" in result.stdout
    # Then it left the dead letters, and is on its queue without its past attempts
    assert dead_count(redis_broker) == 1
    [redis_id] = redis_broker.client.lrange(f"{redis_broker.namespace}:{QUEUE}", 0, -1)
    body = redis_broker.client.hget(f"{redis_broker.namespace}:{QUEUE}.msgs", redis_id)
    message = dramatiq.Message.decode(body)
    assert message.message_id == two_dead[1]
    assert "traceback" not in message.options and "retries" not in message.options
    # And once the actor works again, the requeued message runs (and only it)
    flaky.working = True
    flaky.work_until(lambda: flaky.done == [42], "the requeued message to run")
    assert dead_count(redis_broker) == 1


def test_requeue_all(two_dead, flaky, redis_broker):
    result = outreach("dlq", "requeue", "--all", "--json")
    assert result.exit_code == 0, result.output
    assert sorted(d["message_id"] for d in json.loads(result.stdout)["requeued"]) == sorted(
        two_dead
    )
    assert dead_count(redis_broker) == 0
    assert redis_broker.client.hlen(f"{redis_broker.namespace}:{QUEUE}.XQ.msgs") == 0
    flaky.working = True
    flaky.work_until(lambda: sorted(flaky.done) == [41, 42], "both to run")


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["requeue", "no-such-message"], "no dead-lettered message no-such-message"),
        (["requeue"], "MESSAGE_ID or --all"),
        (["requeue", "x", "--all"], "MESSAGE_ID or --all"),
        (["list", "--bogus"], "No such option"),
    ],
)
def test_bad_requeue_requests_change_nothing(two_dead, redis_broker, args, fragment):
    assert_refused(outreach("dlq", *args), fragment)
    assert dead_count(redis_broker) == 2


def test_without_redis_there_are_no_dead_letters_to_list(stub_broker):
    assert_refused(outreach("dlq", "list"), "REDIS_URL")
