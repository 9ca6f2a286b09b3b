"""The floor on its own: a do-nothing actor's messages per second. `python -m bench.bare [N]`."""

import sys
from typing import Any

from bench.common import bare_actor_rate, bench_environment, figure, load_average, report


def summary(figures: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The floor every other figure is compared with (no target: it is the machine's)."""
    bare = figures["bare_actor"]
    rate = bare["messages_per_second"]
    return {
        f"bare actor, {bare['messages']:,} messages": figure(rate, "messages/s", bare_actor=rate),
        "bare actor: worker CPU a message": figure(bare["worker_cpu_ms_per_message"], "ms"),
    }


# What `python -m bench --quick` and `python -m bench` run.
QUICK_ARGS = ["5000"]
FULL_ARGS = ["10000"]


if __name__ == "__main__":
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000
    with bench_environment("bare") as env:
        start_load = load_average()
        report({"bare_actor": bare_actor_rate(env, n), "load_average_at_start": start_load})
