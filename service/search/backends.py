"""Where a search's runs train: a local process pool fed as slots free up, or Celery.

The local pool is service.local's, but fed one configuration at a time as results land
instead of one batch: a configuration's seeds go to one process together and train as one
population.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, wait

from service import local

OnDone = Callable[[int, str | None], None]


class LocalBackend:
    """``slots`` processes; ``submit`` a configuration's runs, ``wait`` for any to finish."""

    def __init__(self, slots: int, url: str | None, on_done: OnDone | None = None) -> None:
        self.slots = slots
        self.on_done = on_done
        self.statuses: dict[int, str | None] = {}
        # started here, before the driver's progress bar starts a thread, so it can fork
        self.pool = local.LocalPool(slots, url)
        self.pool.start()
        self.futures: dict[Future[dict[int, str | None]], list[int]] = {}

    def submit(self, run_ids: Sequence[int]) -> None:
        group = list(run_ids)
        self.futures[self.pool.submit(group)] = group

    def wait(self, timeout: float) -> None:
        """Until a configuration finishes or ``timeout`` seconds pass."""
        if not self.futures:
            time.sleep(min(timeout, 0.05))
            return
        done, _ = wait(list(self.futures), timeout=timeout, return_when=FIRST_COMPLETED)
        for fut in done:
            self._collect(fut)

    def _collect(self, fut: Future[dict[int, str | None]]) -> None:
        group = self.futures.pop(fut)
        try:
            statuses = fut.result()
        except Exception as exc:  # the process died: the runs stay claimed, as in local.py
            statuses = dict.fromkeys(group, f"lost: {exc}")
        for run_id in group:
            self.statuses[run_id] = statuses.get(run_id)
            if self.on_done is not None:
                self.on_done(run_id, statuses.get(run_id))

    def close(self, *, interrupted: bool) -> None:
        """Interrupted: no new group starts, running ones stop within an epoch and go back
        to queued (their checkpoints kept); then the processes end."""
        if interrupted:
            self.pool.stop.set()
            for fut in list(self.futures):
                if fut.cancel():
                    self.futures.pop(fut)
        for fut in list(self.futures):
            wait([fut])
            self._collect(fut)
        self.pool.close()


class CeleryBackend:
    """Publishes each configuration's runs as one population task; results land in the
    database, which the driver polls."""

    def __init__(
        self, slots: int, url: str, broker_url: str, sweep_id: int, poll_s: float = 0.5
    ) -> None:
        self.slots = slots
        self.url = url
        self.broker_url = broker_url
        self.sweep_id = sweep_id
        self.poll_s = poll_s

    def submit(self, run_ids: Sequence[int]) -> None:
        from service.dispatch import publish_stored

        # one task for the configuration: its seeds are one population (min_groups=1)
        publish_stored(
            self.url, list(run_ids), self.broker_url, sweep_id=self.sweep_id, min_groups=1
        )

    def wait(self, timeout: float) -> None:
        time.sleep(min(timeout, self.poll_s))

    def close(self, *, interrupted: bool) -> None:
        """Nothing to stop: the runs go on on the workers."""
