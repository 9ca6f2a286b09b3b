"""The floor: a bare actor that does nothing, on the project's broker and middleware."""

import dramatiq

import worker.actors  # noqa: F401  (same broker set-up, middleware and logging as the real work)


@dramatiq.actor(queue_name="bench_noop", max_retries=0)
def noop(i: int) -> None:
    return None
