"""The ``web`` process: what comes back in (WAHA events, unsubscribes) and health checks.

It only verifies, stores and enqueues: the work an event asks for is done by a worker.
"""
