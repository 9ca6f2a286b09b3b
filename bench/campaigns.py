"""Campaign speed and memory, on the real Redis and PostgreSQL. `python -m bench.campaigns`.

1. 1,000 campaigns x 100 contacts, daily limit 50, all due at once: seconds from the tick to the
   last of the 50,000 deliveries recorded (log channel, Procfile-like worker started after the
   tick, as the bare run includes its worker's start), against the bare no-op actor's rate for
   the same number of messages in the same run (just before and just after; the ratio uses the
   mean of the two). Target: at least 0.35 of the bare rate.
   Also, in the same run, the same number of plain outbox messages delivered on their own (the
   floor every feature's sends share: one delivery message and two statements per send).
   With --suppressed N, the same run again in the same database, its account holding N
   suppressed addresses (none of them a recipient): the suppression list's cost on the send
   path, checked in every claim and every delivery window. Target: within 10% of the run
   without (0.9 of its deliveries per second or more). The second run finds the first's rows in
   the outbox: if anything, that counts against it.
2. Starting a campaign over 1,000,000 contacts vs 10,000: seconds to materialise the recipients
   and peak memory, each in a fresh interpreter. Target: 60 s or less, within 50 MB.

Options: --campaigns N --contacts N --limit N --big N --small N --suppressed N --skip-rate
--skip-memory --skip-floor
"""

from __future__ import annotations

import argparse
import time
from datetime import timedelta
from typing import Any

from bench.common import (
    bare_actor_around,
    bench_environment,
    cpu_ms_per_message,
    figure,
    load_average,
    peak_rss_mb,
    rate_over_bare,
    report,
    run_isolated,
    wait_for,
    worker,
)

RATE_TARGET = 0.35
# Deliveries per second with the suppression list full, against the same run with it empty.
SUPPRESSED_RATE_TARGET = 0.9
MATERIALISE_SECONDS_TARGET = 60
MEMORY_MARGIN_MB_TARGET = 50


def _owner_and_template(name: str = "bench") -> tuple[int, int, int]:
    """A new account, its owner and a template: (owner, template, account)."""
    from storage import clock
    from storage.models import Account, MessageTemplate, User

    now = clock.now()
    account = Account.create(name=name, created_at=now)
    owner = User.create(account=account, name="bench", created_at=now)
    template = MessageTemplate.create(
        owner=owner, name=name, body="Hello {Name}, this is our offer.", created_at=now
    )
    return owner.id, template.id, account.id


def _seed_suppressed(account_id: int, count: int) -> None:
    """`count` suppressed numbers in the account, made by the server; recipients' numbers are
    +336..., these 337..., so none of them is a recipient."""
    from storage import clock
    from storage.db import database

    now = clock.now().replace(tzinfo=None)
    database.execute_sql(
        "INSERT INTO suppression (account_id, channel, address, reason, source, created_at) "
        "SELECT %s, 'whatsapp', '337' || lpad(g::text, 9, '0'), 'opt_out', 'bench', %s "
        "FROM generate_series(1, %s) g",
        (account_id, now, count),
    )


def _seed_lists(prefix: str, lists: int, contacts_each: int) -> None:
    """Lists and their contacts, made by the server (nothing passes through this process)."""
    from storage import clock
    from storage.db import database

    now = clock.now().replace(tzinfo=None)
    database.execute_sql(
        "INSERT INTO contact_list (name, created_at) "
        "SELECT %s || g, %s FROM generate_series(1, %s) g",
        (prefix, now, lists),
    )
    database.execute_sql(
        "INSERT INTO contact (contact_list_id, phone, email, first_name, created_at) "
        "SELECT l.id, '+336' || lpad((l.id * 1000000 + g)::text, 12, '0'), NULL, "
        "       CASE WHEN g %% 10 = 0 THEN NULL ELSE 'Name' || g END, %s "
        "FROM contact_list l CROSS JOIN generate_series(1, %s) g "
        "WHERE l.name LIKE %s ORDER BY l.id, g",
        (now, contacts_each, prefix + "%"),
    )


def campaign_rate(
    env: dict[str, str],
    campaigns: int,
    contacts: int,
    limit: int,
    *,
    suppressed: int = 0,
    prefix: str = "rate-",
) -> dict:
    """Campaigns of a new account, all due at once, delivered by a Procfile-like worker; with
    `suppressed` addresses in the account's suppression list first."""
    from producers.campaigns import tick
    from storage import clock
    from storage.db import database
    from storage.models import Campaign, ContactList, OutboxMessage

    with database.connection_context():
        owner_id, template_id, account_id = _owner_and_template(prefix)
        _seed_lists(prefix, campaigns, contacts)
        if suppressed:
            _seed_suppressed(account_id, suppressed)
        database.execute_sql("ANALYZE")
        now = clock.now()
        due = now - timedelta(seconds=1)
        rows = [
            {
                "owner": owner_id,
                "name": f"bench {cl.id}",
                "channel": "log",
                "template": template_id,
                "contact_list": cl.id,
                "daily_send_limit": limit,
                "status": "scheduled",
                "next_batch_at": due,
                "created_at": now,
                "updated_at": now,
            }
            for cl in ContactList.select(ContactList.id).where(ContactList.name.startswith(prefix))
        ]
        for i in range(0, len(rows), 1000):
            Campaign.insert_many(rows[i : i + 1000]).execute()
    expected = campaigns * min(contacts, limit)

    def all_sent() -> bool:
        with database.connection_context():
            sent = OutboxMessage.select().where(
                (OutboxMessage.status == "sent")
                & (OutboxMessage.source == "campaign")
                & (OutboxMessage.account_id == account_id)
            )
            return sent.count() >= expected

    start = time.perf_counter()
    ticked = tick(clock.now())
    tick_seconds = time.perf_counter() - start
    with worker(env):
        wait_for(all_sent, timeout=1800, interval=0.25)
        elapsed = time.perf_counter() - start
    with database.connection_context():
        completed = (
            Campaign.select()
            .where((Campaign.status == "running") & (Campaign.owner == owner_id))
            .count()
        )
    return {
        "suppressed_addresses": suppressed,
        "campaigns": campaigns,
        "contacts_each": contacts,
        "daily_send_limit": limit,
        "batches_enqueued": ticked["enqueued"],
        "tick_seconds": round(tick_seconds, 3),
        "deliveries": expected,
        "seconds": round(elapsed, 3),
        "deliveries_per_second": round(expected / elapsed, 1),
        "worker_cpu_ms_per_delivery": cpu_ms_per_message(expected),
        "campaigns_still_running": completed,
    }


def outbox_floor(env: dict[str, str], messages: int) -> dict:
    """The same number of plain outbox messages on `log`, queued in bulk then delivered: what any
    feature's sends cost through the outbox and its delivery actor, whatever produces them."""
    from storage.db import database
    from storage.models import OutboxMessage
    from worker.outbox import Outgoing, queue_messages

    start = time.perf_counter()
    with database.connection_context():
        for first in range(0, messages, 1000):
            queue_messages(
                [
                    Outgoing(f"floor:{n}", "log", "+33600000000", "Hello there, this is our offer.")
                    for n in range(first, min(messages, first + 1000))
                ],
                source="bench-floor",
            )
    queued = time.perf_counter() - start

    def all_sent() -> bool:
        with database.connection_context():
            sent = OutboxMessage.select().where(
                (OutboxMessage.status == "sent") & (OutboxMessage.source == "bench-floor")
            )
            return sent.count() >= messages

    with worker(env):
        wait_for(all_sent, timeout=1800, interval=0.25)
        elapsed = time.perf_counter() - start
    return {
        "messages": messages,
        "queue_seconds": round(queued, 3),
        "seconds": round(elapsed, 3),
        "messages_per_second": round(messages / elapsed, 1),
        "worker_cpu_ms_per_message": cpu_ms_per_message(messages),
    }


# Peak memory of the fresh interpreter itself: VmHWM belongs to the process's own address space,
# while getrusage's ru_maxrss keeps the parent's peak across fork and exec.
_MATERIALISE = """
import json, time
from storage.db import database, init_database
from worker.campaigns.recipients import materialise

def peak_mb():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024

init_database()
with database.connection_context():
    before = peak_mb()
    start = time.perf_counter()
    made = materialise({campaign_id})
    seconds = time.perf_counter() - start
print(json.dumps({{"recipients": made, "seconds": round(seconds, 3),
                  "peak_rss_mb": round(peak_mb(), 1),
                  "peak_rss_before_mb": round(before, 1)}}))
"""


def materialisation(env: dict[str, str], small: int, big: int) -> dict:
    """A campaign over `small` and one over `big` contacts, each started in a fresh process."""
    from storage import clock
    from storage.db import database
    from storage.models import Campaign, ContactList
    from worker.campaigns.recipients import last_contact_id

    figures = {}
    with database.connection_context():
        owner_id, template_id, _ = _owner_and_template()
    for size in (small, big):
        prefix = f"size-{size}-"
        with database.connection_context():
            _seed_lists(prefix, 1, size)
            contact_list = ContactList.get(ContactList.name == prefix + "1")
            now = clock.now()
            campaign = Campaign.create(
                owner=owner_id,
                name=prefix,
                channel="log",
                template=template_id,
                contact_list=contact_list.id,
                status="running",
                started_at=now,
                next_batch_at=now,
                contacts_upto_id=last_contact_id(contact_list.id),
                created_at=now,
                updated_at=now,
            )
            database.execute_sql("ANALYZE")
        figures[size] = run_isolated(_MATERIALISE.format(campaign_id=campaign.id), env)
    small_fig, big_fig = figures[small], figures[big]
    margin = big_fig["peak_rss_mb"] - small_fig["peak_rss_mb"]
    return {
        "small": {"contacts": small, **small_fig},
        "big": {"contacts": big, **big_fig},
        "peak_rss_difference_mb": round(margin, 1),
        "seconds_target": MATERIALISE_SECONDS_TARGET,
        "memory_margin_target_mb": MEMORY_MARGIN_MB_TARGET,
        "meets_target": big_fig["seconds"] <= MATERIALISE_SECONDS_TARGET
        and margin <= MEMORY_MARGIN_MB_TARGET,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--campaigns", type=int, default=1_000)
    parser.add_argument("--contacts", type=int, default=100)
    parser.add_argument("--limit", type=int, default=50)
    parser.add_argument("--big", type=int, default=1_000_000)
    parser.add_argument("--small", type=int, default=10_000)
    parser.add_argument("--skip-rate", action="store_true")
    parser.add_argument("--skip-memory", action="store_true")
    parser.add_argument(
        "--skip-floor", action="store_true", help="Skip the plain outbox delivery figure."
    )
    parser.add_argument(
        "--suppressed",
        type=int,
        default=0,
        help="Run the campaigns again with this many suppressed addresses in the account.",
    )
    args = parser.parse_args()
    figures: dict = {"load_average_at_start": load_average()}
    if not args.skip_rate:
        with bench_environment("campaigns") as env:
            import worker.actors  # noqa: F401  (after the environment: the bench's broker)

            deliveries = args.campaigns * min(args.contacts, args.limit)

            def measure() -> dict:
                if not args.skip_floor:
                    figures["outbox_floor"] = outbox_floor(env, deliveries)
                plain = campaign_rate(env, args.campaigns, args.contacts, args.limit)
                if args.suppressed:
                    figures["campaigns_with_suppressed"] = campaign_rate(
                        env,
                        args.campaigns,
                        args.contacts,
                        args.limit,
                        suppressed=args.suppressed,
                        prefix="suppressed-",
                    )
                return plain

            figures["bare_actor"], figures["campaigns"] = bare_actor_around(
                env, deliveries, measure
            )
            if args.suppressed:
                with_list = figures["campaigns_with_suppressed"]["deliveries_per_second"]
                suppressed_ratio = with_list / figures["campaigns"]["deliveries_per_second"]
                figures["suppressed_ratio"] = round(suppressed_ratio, 3)
                figures["suppressed_ratio_target"] = SUPPRESSED_RATE_TARGET
                figures["meets_suppressed_target"] = suppressed_ratio >= SUPPRESSED_RATE_TARGET
            ratio = (
                figures["campaigns"]["deliveries_per_second"]
                / figures["bare_actor"]["messages_per_second"]
            )
            figures["ratio_to_bare"] = round(ratio, 3)
            figures["ratio_target"] = RATE_TARGET
            figures["meets_rate_target"] = ratio >= RATE_TARGET
            if "outbox_floor" in figures:
                floor = figures["outbox_floor"]["messages_per_second"]
                figures["ratio_to_outbox_floor"] = round(
                    figures["campaigns"]["deliveries_per_second"] / floor, 3
                )
    if not args.skip_memory:
        with bench_environment("materialise") as env:
            figures["materialisation"] = materialisation(env, args.small, args.big)
    figures["bench_process_peak_rss_mb"] = round(peak_rss_mb(), 1)
    report(figures)


def summary(figures: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The figures asked of this bench, with their targets."""
    out: dict[str, dict[str, Any]] = {}
    bare = figures.get("bare_actor", {}).get("messages_per_second")
    if "campaigns" in figures:
        run = figures["campaigns"]
        name = (
            f"campaigns: {run['campaigns']:,} x {run['contacts_each']} contacts, "
            f"limit {run['daily_send_limit']}"
        )
        out[name] = figure(figures["ratio_to_bare"], "x bare actor", RATE_TARGET, bare_actor=bare)
        out["campaigns: worker CPU a delivery"] = figure(run["worker_cpu_ms_per_delivery"], "ms")
    if "outbox_floor" in figures:
        floor = figures["outbox_floor"]
        out["outbox: plain messages delivered on log"] = rate_over_bare(
            floor["messages_per_second"], bare
        )
    if "materialisation" in figures:
        made = figures["materialisation"]
        out[f"campaigns: materialising {made['big']['contacts']:,} recipients"] = figure(
            made["big"]["seconds"], "s", MATERIALISE_SECONDS_TARGET, at_most=True
        )
        out[f"campaigns: its peak memory over a {made['small']['contacts']:,}-contact start"] = (
            figure(made["peak_rss_difference_mb"], "MB", MEMORY_MARGIN_MB_TARGET, at_most=True)
        )
    return out


# What `python -m bench --quick` and `python -m bench` run.
QUICK_ARGS = ["--campaigns", "60", "--big", "100000"]
FULL_ARGS: list[str] = []


if __name__ == "__main__":
    main()
