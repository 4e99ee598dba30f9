"""The live progress bar of a sweep (rich), shared by local runs and `sweep watch`."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)


class SweepProgress:
    """Runs done / total, failures, elapsed time and ETA for one sweep."""

    def __init__(self, progress: Progress, task: TaskID) -> None:
        self._progress = progress
        self._task = task
        self.failed = 0
        self.done = 0
        # The running runs' share of their epochs, in runs: what moves the bar while a long
        # population trains and no run has finished yet (see running_epochs).
        self.partial = 0.0
        self._lock = threading.Lock()

    def _show(self, **fields: Any) -> None:
        with self._lock:
            total = self._progress.tasks[self._task].total or 0
            self._progress.update(
                self._task,
                completed=min(self.done + self.partial, total),
                done=self.done,
                failed=self.failed,
                **fields,
            )

    def epochs(self, partial: float, epochs: int) -> None:
        """The running runs have trained ``epochs`` in all, ``partial`` runs' worth."""
        self.partial = max(0.0, partial)
        self._show(epochs=f", {epochs:,} epochs in running runs" if epochs else "")

    def advance(self, status: str | None) -> None:
        """A run came back from the pool. Only a finished run moves the bar: a run handed
        back ``queued`` (or None) by Ctrl-C is not done, and the bar must not say it is."""
        if status in ("queued", None):
            return
        if status not in ("succeeded", "diverged", "pruned"):  # pruned: stopped early, on purpose
            self.failed += 1
        self.done += 1
        self._show()

    def note(self, text: str) -> None:
        """A line printed above the live bar (on stderr), which stays in place."""
        self._progress.console.print(text, markup=False, highlight=False)

    def set(self, *, done: int, failed: int, **fields: Any) -> None:
        self.failed = failed
        self.done = done
        self._show(**fields)


@contextmanager
def sweep_progress(
    total: int,
    *,
    description: str = "runs",
    transient: bool = False,
    poll: Callable[[], tuple[float, int]] | None = None,
    interval: float = 1.0,
) -> Iterator[SweepProgress]:
    """A live bar on stderr; with ``poll`` (running_epochs of the sweep, say), a thread asks it
    every ``interval`` seconds how far the running runs are, so the bar moves with epochs."""
    progress = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        # finished runs, not the bar's completed share (which counts runs partly trained)
        TextColumn("{task.fields[done]}/{task.total:.0f}"),
        TextColumn("{task.fields[failed]} failed{task.fields[epochs]}"),
        TextColumn("elapsed"),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        transient=transient,
        # stderr: the bar must never mix into a table, JSON or CSV printed on stdout.
        console=Console(stderr=True),
    )
    with progress:
        task = progress.add_task(description, total=total, failed=0, done=0, epochs="")
        bar = SweepProgress(progress, task)
        stop = threading.Event()
        if poll is not None:
            threading.Thread(target=_poll, args=(bar, poll, interval, stop), daemon=True).start()
        try:
            yield bar
        finally:
            stop.set()


def _poll(
    bar: SweepProgress,
    poll: Callable[[], tuple[float, int]],
    interval: float,
    stop: threading.Event,
) -> None:
    while not stop.wait(interval):
        try:
            bar.epochs(*poll())
        except Exception:  # noqa: BLE001 - a bar that misses a look is no failure of the sweep
            continue


def epoch_poll(url: str, sweep_id: int) -> Callable[[], tuple[float, int]]:
    """What sweep_progress polls for one sweep: service.db.queries.running_epochs, read-only."""

    def poll() -> tuple[float, int]:
        from service.db.queries import running_epochs
        from service.db.session import session_scope

        with session_scope(url, readonly=True) as session:
            return running_epochs(session, sweep_id)

    return poll
