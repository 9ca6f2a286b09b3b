"""The floor on its own: a do-nothing actor's messages per second. `python -m bench.bare [N]`."""

import sys

from bench.common import bare_actor_rate, bench_environment, load_average, report

if __name__ == "__main__":
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000
    with bench_environment("bare") as env:
        start_load = load_average()
        report({"bare_actor": bare_actor_rate(env, n), "load_average_at_start": start_load})
