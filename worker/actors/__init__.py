"""The module the stock ``dramatiq`` runner loads: ``dramatiq worker.actors``.

The broker is set up before any actor is declared; each kind of work has its own module.
"""

from worker.broker import setup

setup()

from worker.actors import campaigns, delivery, engagement, hunts, inbound  # noqa: E402

__all__ = ["campaigns", "delivery", "engagement", "hunts", "inbound"]
