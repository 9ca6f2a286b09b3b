"""The operator console's overview page and `/metrics` at size, through a real `outreach web`.

`python -m bench.console [--campaigns 1000] [--outbox 1000000] [--accounts 10] [--requests 200]`

Seeds a fresh PostgreSQL database by the server itself (`INSERT ... SELECT generate_series`):
accounts with one owner each, campaigns spread over them (a third running, a tenth paused, the
rest completed, scheduled or draft) with their recipients, senders (a few paused) and the outbox
rows (spread over 30 days: 1% still open, the rest sent, failed or suppressed, a third each of
campaign, hunt and engagement sends). Then `VACUUM ANALYZE`, as autovacuum would have done on
a live database. An operator of the first account is made with the CLI's own function
(`producers.operators.add_operator`), and logs in through the login form.

Measures, one request after another on a kept-alive connection after a few to warm up:
`GET /console/` (the overview) and `GET /metrics`, p50, p95 and max. Also prints the plans of
the overview's panel queries and of `/metrics`' outbox and campaign progress queries (`EXPLAIN
ANALYZE`) with the indexes they use. Target: p95 under 200 ms for each.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from bench.common import bench_environment, figure, load_average, report, web_process

# p95 asked of both the overview page and /metrics, in milliseconds.
P95_TARGET_MS = 200
PORT = int(os.environ.get("OUTREACH_BENCH_WEB_PORT", "8766"))
# Requests made before the measured ones (connections, caches, the plans).
WARM_UP = 5
# The outbox spans this many days; finished rows are spread over them evenly.
OUTBOX_DAYS = 30
# One outbox row in this many (about 1%) is still open (queued, sending or unknown); prime, so
# the open rows fall on every account.
OPEN_EVERY = 101
# One sender in this many is paused.
PAUSED_EVERY = 5
OPERATOR_EMAIL = "ops@bench.example.com"
OPERATOR_PASSWORD = "a long bench console password"
# A scan of a plan's line, with its index and table.
SCAN = re.compile(r"(Index Only Scan|Index Scan|Seq Scan|Bitmap Index Scan)( using \w+)?( on \w+)?")
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def progress(line: str) -> None:
    print(f"bench: {line}", file=sys.stderr, flush=True)


def seed(campaigns: int, outbox: int, accounts: int) -> dict[str, int]:
    """Every row made by the server; returns the operator's account and user ids."""
    from producers.operators import add_operator
    from storage import clock
    from storage.db import database

    now = clock.now().replace(tzinfo=None)
    recipients_each = max(1, (outbox // 3) // max(campaigns, 1))
    sql = database.execute_sql
    sql(
        "INSERT INTO account (name, timezone, created_at) "
        "SELECT 'Account ' || g, (ARRAY['UTC', 'Europe/Paris', 'America/New_York'])[1 + g %% 3], "
        "%s FROM generate_series(1, %s) g",
        (now, accounts),
    )
    sql(
        "INSERT INTO app_user (account_id, name, created_at) "
        "SELECT id, 'Owner ' || id, %s FROM account",
        (now,),
    )
    sql("INSERT INTO contact_list (name, created_at) SELECT 'List ' || id, %s FROM account", (now,))
    sql(
        "INSERT INTO contact (contact_list_id, email, first_name, created_at) "
        "SELECT l.id, 'c' || g || '@list' || l.id || '.example.com', 'C' || g, %s "
        "FROM contact_list l, generate_series(1, %s) g",
        (now, recipients_each),
    )
    sql(
        "INSERT INTO message_template (owner_id, name, body, created_at) "
        "SELECT id, 'Offer', 'Hello {Name}', %s FROM app_user",
        (now,),
    )
    # Campaign g belongs to account 1 + g %% accounts; its status by g: a third running, a tenth
    # paused, then completed, scheduled and draft.
    sql(
        "INSERT INTO campaign (owner_id, name, channel, template_id, contact_list_id, "
        "daily_send_limit, default_name_value, status, created_at, updated_at, "
        "current_batch_number, next_batch_at, recipients_total) "
        "SELECT u.id, 'Campaign ' || g, 'whatsapp', t.id, l.id, 50, 'there', "
        "CASE WHEN g %% 30 < 10 THEN 'running' WHEN g %% 30 < 13 THEN 'paused' "
        "WHEN g %% 30 < 27 THEN 'completed' WHEN g %% 30 < 29 THEN 'scheduled' ELSE 'draft' END, "
        "%s, %s, 3, %s + (g %% 1440) * interval '1 minute', %s "
        "FROM generate_series(1, %s) g "
        "JOIN app_user u ON u.account_id = 1 + g %% %s "
        "JOIN message_template t ON t.owner_id = u.id "
        "JOIN contact_list l ON l.name = 'List ' || u.account_id",
        (now, now, now, recipients_each, campaigns, accounts),
    )
    sql(
        "INSERT INTO campaign_recipient (campaign_id, contact_id, status, batch_number) "
        "SELECT c.id, k.id, CASE WHEN c.status = 'completed' THEN "
        "(CASE WHEN k.id %% 20 = 0 THEN 'failed' ELSE 'sent' END) "
        "WHEN c.status IN ('running', 'paused') THEN "
        "(CASE WHEN k.id %% 3 = 0 THEN 'sent' WHEN k.id %% 3 = 1 THEN 'queued' ELSE 'pending' END) "
        "ELSE 'pending' END, NULL "
        "FROM campaign c JOIN contact k ON k.contact_list_id = c.contact_list_id",
    )
    sql(
        "INSERT INTO sender (name, channel, account_id, day_count, version, created_at, "
        "paused_until, pause_reason) "
        "SELECT 'whatsapp:account-' || id, 'whatsapp', id, 0, 0, %s, "
        "CASE WHEN id %% %s = 1 THEN %s + interval '2 hours' END, "
        "CASE WHEN id %% %s = 1 THEN 'WAHA 463' END FROM account "
        "UNION ALL SELECT 'whatsapp:default', 'whatsapp', NULL, 0, 0, %s, "
        "%s + interval '1 hour', 'HTTP 429' "
        "UNION ALL SELECT 'email:news@example.com', 'email', NULL, 0, 0, %s, NULL, NULL",
        (now, PAUSED_EVERY, now, PAUSED_EVERY, now, now, now),
    )
    # Row g: account 1 + g %% accounts, created (g %% OUTBOX_DAYS) days ago spread over the day,
    # finished a minute later; open one in OPEN_EVERY; whatsapp rows from the account's sender
    # or the default one.
    sql(
        "INSERT INTO outbox_message (idempotency_key, channel, recipient, body, source, status, "
        "attempts, created_at, finished_at, account_id, address, sender) "
        "SELECT 'bench:' || g, ch, 'r' || g || '@example.com', 'Hello', "
        "(ARRAY['campaign', 'hunt', 'engagement'])[1 + g %% 3], st, 1, at, "
        "CASE WHEN st IN ('sent', 'failed', 'suppressed') THEN at + interval '1 minute' END, "
        "1 + g %% %(accounts)s, 'r' || g || '@example.com', "
        "CASE WHEN ch = 'whatsapp' THEN (CASE WHEN g %% 4 = 0 THEN 'whatsapp:default' "
        "ELSE 'whatsapp:account-' || (1 + g %% %(accounts)s) END) "
        "WHEN ch = 'email' THEN 'email:news@example.com' ELSE 'log:default' END "
        "FROM (SELECT g, "
        "(ARRAY['whatsapp', 'whatsapp', 'email', 'log'])[1 + (g / 3) %% 4] AS ch, "
        "CASE WHEN g %% %(open)s = 0 "
        "THEN (ARRAY['queued', 'sending', 'unknown'])[1 + (g / %(open)s) %% 3] "
        "WHEN g %% 53 = 1 THEN 'failed' WHEN g %% 97 = 2 THEN 'suppressed' ELSE 'sent' END AS st, "
        "%(now)s - ((g / 11) %% %(days)s) * interval '1 day' "
        "- (g::bigint * 7919 %% 86400) * interval '1 second' AS at "
        "FROM generate_series(1, %(rows)s) g) s",
        {"accounts": accounts, "open": OPEN_EVERY, "now": now, "days": OUTBOX_DAYS, "rows": outbox},
    )
    database.execute_sql(
        "SELECT setval('outbox_message_id_seq', (SELECT max(id) FROM outbox_message))"
    )
    operator = add_operator(1, OPERATOR_EMAIL, OPERATOR_PASSWORD)
    return {"account_id": 1, "user_id": int(operator["id"]), "recipients_each": recipients_each}


def vacuum() -> None:
    """VACUUM ANALYZE every table (outside a transaction), as autovacuum would on a live one."""
    import psycopg

    from storage.settings import get_settings

    with psycopg.connect(get_settings().database_url, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")


def plans(account_id: int) -> dict[str, dict[str, Any]]:
    """`EXPLAIN ANALYZE` of the overview's panel queries and /metrics' outbox queries: the scans
    and indexes each used, and the time the server took."""
    from producers import metrics
    from producers.web import panels
    from storage import clock
    from storage.db import database
    from storage.models import Account

    now = clock.now()
    since = panels.day_start(Account.get_by_id(account_id), now)
    captured: dict[str, Any] = {}
    queries = {
        "overview outbox and sends": panels.outbox_query(account_id, since),
        "overview senders paused": panels.paused_senders_query(account_id, now),
        "metrics outbox open": metrics.open_outbox_query(),
        "metrics outbox finished today": metrics.finished_outbox_query(now),
        "metrics campaign progress": (metrics.CAMPAIGN_PROGRESS_SQL, ("running", "paused")),
    }
    for name, query in queries.items():
        text, params = query if isinstance(query, tuple) else query.sql()
        rows = database.execute_sql("EXPLAIN (ANALYZE, BUFFERS) " + text, params).fetchall()
        lines = [str(row[0]) for row in rows]
        captured[name] = {
            "scans": sorted(
                {match.group(0) for line in lines for match in re.finditer(SCAN, line)}
            ),
            "execution_ms": next(
                (
                    float(line.split(":")[1].split()[0])
                    for line in lines
                    if "Execution Time" in line
                ),
                None,
            ),
            "plan": lines,
        }
    return captured


def log_in(client: httpx.Client) -> None:
    page = client.get("/console/login")
    found = CSRF.search(page.text)
    if found is None:
        raise RuntimeError("the login page has no CSRF token")
    done = client.post(
        "/console/login",
        data={"csrf_token": found.group(1), "email": OPERATOR_EMAIL, "password": OPERATOR_PASSWORD},
    )
    if done.status_code != 303 or not done.headers.get("location", "").endswith("/console/"):
        raise RuntimeError(f"login refused: {done.status_code} {done.text[:200]}")


def cpu_seconds(pid: int) -> float:
    """User and system CPU used so far by process `pid` (the web process)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def timed(client: httpx.Client, path: str, requests: int, expect: str, pid: int) -> dict[str, Any]:
    """Latencies of `requests` GETs of `path` one after another, after WARM_UP unmeasured, and
    the web process's CPU a request (which hardly moves with the machine's other work)."""
    latencies = []
    cpu_before = 0.0
    for n in range(WARM_UP + requests):
        if n == WARM_UP:
            cpu_before = cpu_seconds(pid)
        began = time.perf_counter()
        answer = client.get(path)
        took = (time.perf_counter() - began) * 1000
        if answer.status_code != 200 or expect not in answer.text:
            raise RuntimeError(f"{path}: {answer.status_code} {answer.text[:200]}")
        if n >= WARM_UP:
            latencies.append(took)
    latencies.sort()
    return {
        "requests": requests,
        "p50_ms": round(statistics.median(latencies), 1),
        "p95_ms": round(latencies[max(0, int(len(latencies) * 0.95) - 1)], 1),
        "max_ms": round(latencies[-1], 1),
        "web_cpu_ms_per_request": round((cpu_seconds(pid) - cpu_before) / requests * 1000, 1),
        "bytes": len(answer.content),
    }


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.console")
    parser.add_argument("--campaigns", type=int, default=1000)
    parser.add_argument("--outbox", type=int, default=1_000_000)
    parser.add_argument("--accounts", type=int, default=10)
    parser.add_argument("--requests", type=int, default=200)
    args = parser.parse_args()
    from worker.logging import configure_logging

    # Standard output is the JSON alone.
    configure_logging("WARNING")
    figures: dict[str, Any] = {
        "load_average_at_start": load_average(),
        "campaigns": args.campaigns,
        "outbox_rows": args.outbox,
        "accounts": args.accounts,
    }
    with bench_environment("console") as env:
        from storage.db import database

        with database.connection_context():
            start = time.perf_counter()
            seeded = seed(args.campaigns, args.outbox, args.accounts)
            figures["seed_seconds"] = round(time.perf_counter() - start, 1)
            progress(f"seeded in {figures['seed_seconds']} s")
            vacuum()
            figures["recipients"] = int(
                database.execute_sql("SELECT count(*) FROM campaign_recipient").fetchone()[0]
            )
            figures["operator_account_outbox_rows"] = int(
                database.execute_sql(
                    "SELECT count(*) FROM outbox_message WHERE account_id = %s",
                    (seeded["account_id"],),
                ).fetchone()[0]
            )
            figures["plans"] = plans(seeded["account_id"])
        log = Path(tempfile.gettempdir()) / f"bench-console-web-{PORT}.log"
        web = web_process({**env, "OUTREACH_SECRET_KEY": "bench-console-secret-key"}, PORT, log)
        try:
            with httpx.Client(base_url=f"http://127.0.0.1:{PORT}", timeout=30) as client:
                log_in(client)
                figures["overview"] = timed(
                    client, "/console/", args.requests, "Senders paused", web.pid
                )
                progress(f"overview: {figures['overview']}")
                figures["metrics"] = timed(
                    client, "/metrics", args.requests, "outreach_sender_finished_today", web.pid
                )
                progress(f"metrics: {figures['metrics']}")
        finally:
            os.killpg(web.pid, 15)
            web.wait(30)
    report(figures)


def summary(figures: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The figures asked of this bench, with their targets."""
    size = f"{figures['campaigns']:,} campaigns, {figures['outbox_rows']:,} outbox rows"
    return {
        f"console: overview page p95, {size}": figure(
            figures["overview"]["p95_ms"], "ms", P95_TARGET_MS, at_most=True
        ),
        "console: overview page p50": figure(figures["overview"]["p50_ms"], "ms"),
        "console: overview page, web process CPU a request": figure(
            figures["overview"].get("web_cpu_ms_per_request"), "ms"
        ),
        f"console: /metrics p95, {size}": figure(
            figures["metrics"]["p95_ms"], "ms", P95_TARGET_MS, at_most=True
        ),
        "console: /metrics p50": figure(figures["metrics"]["p50_ms"], "ms"),
        "console: /metrics, web process CPU a request": figure(
            figures["metrics"].get("web_cpu_ms_per_request"), "ms"
        ),
    }


# What `python -m bench --quick` and `python -m bench` run.
QUICK_ARGS = ["--campaigns", "100", "--outbox", "50000", "--requests", "50"]
FULL_ARGS: list[str] = []


if __name__ == "__main__":
    main()
