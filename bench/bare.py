"""The floor on its own: a do-nothing actor's messages per second. `python -m bench.bare [N]`."""

import sys

from bench.common import bare_actor_rate, bench_environment, report

if __name__ == "__main__":
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000
    with bench_environment("bare") as env:
        report({"bare_actor": bare_actor_rate(env, n)})
