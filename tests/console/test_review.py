"""The review page's dead letters: an account's operators see and requeue their own only."""

from __future__ import annotations

import dramatiq
from dramatiq.common import current_millis

from producers.dlq import list_dead


def bury(broker, actor: str, queue: str, *args: object) -> dramatiq.Message:
    """A dead message as Dramatiq leaves one: its id in `<queue>.XQ`, its body beside it."""
    message = dramatiq.Message(
        queue_name=queue, actor_name=actor, args=args, kwargs={},
        options={"retries": 3, "traceback": "Traceback ...\nRuntimeError: boom"},
    )  # fmt: skip
    key = f"{broker.namespace}:{queue}.XQ"
    broker.client.zadd(key, {message.message_id: current_millis()})
    broker.client.hset(f"{key}.msgs", message.message_id, message.encode())
    return message


def test_an_operator_sees_and_requeues_only_their_accounts_dead_letters(
    tenants, console, fakeredis_broker
):
    # Given a dead batch of each account's campaign, and a dead sweep of no account
    a, b = tenants
    mine = bury(fakeredis_broker, "run_campaign_batch", "campaign", a.campaign.id, 1)
    theirs = bury(fakeredis_broker, "run_campaign_batch", "campaign", b.campaign.id, 1)
    sweep = bury(fakeredis_broker, "fire_schedule", "scheduler", "campaigns", "2026-03-02")
    # When Acme's operator opens the review page
    console.login(a.email)
    page = console.get("/console/review").text
    # Then their own and the installation's are listed, Globex's is not
    assert mine.message_id in page
    assert sweep.message_id in page
    assert theirs.message_id not in page
    # And requeueing Globex's by its id is not found, and leaves it dead
    refused = console.post(
        "/console/review/dead", {"message_id": theirs.message_id, "confirm": "yes"}
    )
    assert refused.status_code == 404
    # Without the confirmation nothing is requeued either
    assert console.post("/console/review/dead", {"message_id": mine.message_id}).status_code == 400
    assert len(list_dead(fakeredis_broker)) == 3
    # Requeueing their own puts it back on its queue, clean
    done = console.post("/console/review/dead", {"message_id": mine.message_id, "confirm": "yes"})
    assert done.status_code == 303
    left = {d.message_id for d in list_dead(fakeredis_broker)}
    assert left == {theirs.message_id, sweep.message_id}
    bodies = fakeredis_broker.client.hvals(f"{fakeredis_broker.namespace}:campaign.msgs")
    assert [dramatiq.Message.decode(body).message_id for body in bodies] == [mine.message_id]
    assert dramatiq.Message.decode(bodies[0]).options.get("retries") is None
    # "Requeue all" takes what this operator sees, never another account's
    console.get("/console/review")
    assert console.post("/console/review/dead", {"all": "yes", "confirm": "yes"}).status_code == 303
    assert {d.message_id for d in list_dead(fakeredis_broker)} == {theirs.message_id}
