"""Dramatiq's own Prometheus middleware for the worker processes, off unless asked for.

Dramatiq's middleware counts messages, errors, retries, dead letters and durations per queue and
actor into prometheus-client's multiprocess files (one per process, in ``dramatiq_prom_db``),
and the ``dramatiq`` runner starts one exposition server beside the workers that adds them up
(``dramatiq_prom_host``:``dramatiq_prom_port``, 0.0.0.0:9191 by default). Its metric objects
are made when the worker process boots; processes that only enqueue (web, scheduler, CLI)
share the broker set-up but never boot, so here every hook waits for the boot.

Dramatiq sets ``PROMETHEUS_MULTIPROC_DIR`` at boot, before it imports prometheus-client (which
picks its multiprocess mode on first import): nothing in a worker process imports it earlier.
The directory keeps every process's files; start the workers with it empty (a fresh
container's /tmp, or ``rm -rf`` before the Procfile's command) so old counts do not linger.
"""

from __future__ import annotations

from typing import Any

from dramatiq.middleware.prometheus import Prometheus


class WorkerPrometheus(Prometheus):
    """Dramatiq's middleware, inert in a process that has not booted as a worker."""

    def __init__(self) -> None:
        super().__init__()
        self.booted = False

    def after_process_boot(self, broker: Any) -> None:
        super().after_process_boot(broker)
        self.booted = True

    def after_worker_shutdown(self, broker: Any, worker: Any) -> None:
        if self.booted:
            super().after_worker_shutdown(broker, worker)

    def after_nack(self, broker: Any, message: Any) -> None:
        if self.booted:
            super().after_nack(broker, message)

    def after_enqueue(self, broker: Any, message: Any, delay: Any) -> None:
        if self.booted:
            super().after_enqueue(broker, message, delay)

    def before_delay_message(self, broker: Any, message: Any) -> None:
        if self.booted:
            super().before_delay_message(broker, message)

    def before_process_message(self, broker: Any, message: Any) -> None:
        if self.booted:
            super().before_process_message(broker, message)

    def after_process_message(
        self, broker: Any, message: Any, *, result: Any = None, exception: Any = None
    ) -> None:
        if self.booted:
            super().after_process_message(broker, message, result=result, exception=exception)

    after_skip_message = after_process_message
