"""The reconciler inside every worker: a daemon thread of the worker's main process.

Started when the worker is ready (celery.signals.worker_ready), stopped at shutdown. It runs
service.reconcile.reconcile every BPLAB_RECONCILE_SECONDS (default a quarter of the lease) over
the Celery sweeps, publishing to this worker's queue; the advisory lock there makes all but one
of the workers skip a given turn. A thread, not a Celery task or the consumer's timer: a pass
that waits on a slow database or broker must never hold up the consumer, and a beat-less
deployment needs nothing extra to run.
"""

from __future__ import annotations

import logging
import threading

from service import reliability
from service.config import get_settings, mask_url
from service.reconcile import reconcile

log = logging.getLogger("bplab.reconcile")


class PeriodicReconciler:
    def __init__(self, interval_s: float | None = None) -> None:
        self.interval_s = reliability.reconcile_seconds() if interval_s is None else interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="bplab-reconciler", daemon=True)

    def start(self) -> None:
        settings = get_settings()
        log.info(
            "reconciler: every %.1f s (lease %.1f s, at most %d attempts) on %s",
            self.interval_s,
            reliability.lease_seconds(),
            reliability.max_attempts(),
            mask_url(settings.database_url),
        )
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.run_once()

    def run_once(self) -> None:
        settings = get_settings()
        try:
            report = reconcile(
                settings.database_url, broker_url=settings.broker_url, backend="celery"
            )
        except Exception as exc:  # a database outage must not end the thread: try next turn
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            log.warning("reconciler: pass failed: %s: %s", type(exc).__name__, first)
            return
        if report.changed or report.broker_error:
            log.warning(
                "reconciler: %s (re-queued %s, failed %s, published %s)",
                report.summary(),
                report.requeued,
                report.failed,
                report.republished,
            )


_reconciler: PeriodicReconciler | None = None


def start(**_: object) -> None:
    """worker_ready handler (main process only: pool children are forked earlier or never
    inherit the thread)."""
    global _reconciler
    if _reconciler is None:
        _reconciler = PeriodicReconciler()
        _reconciler.start()


def stop(**_: object) -> None:
    if _reconciler is not None:
        _reconciler.stop()
