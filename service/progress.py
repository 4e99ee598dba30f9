"""The live progress bar of a sweep (rich), shared by local runs and `sweep watch`."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
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

    def advance(self, status: str | None) -> None:
        """A run came back from the pool. Only a finished run moves the bar: a run handed
        back ``queued`` (or None) by Ctrl-C is not done, and the bar must not say it is."""
        if status in ("queued", None):
            return
        if status not in ("succeeded", "diverged", "pruned"):  # pruned: stopped early, on purpose
            self.failed += 1
        self._progress.update(self._task, advance=1, failed=self.failed)

    def note(self, text: str) -> None:
        """A line printed above the live bar (on stderr), which stays in place."""
        self._progress.console.print(text, markup=False, highlight=False)

    def set(self, *, done: int, failed: int, **fields: Any) -> None:
        self.failed = failed
        self._progress.update(self._task, completed=done, failed=failed, **fields)


@contextmanager
def sweep_progress(
    total: int, *, description: str = "runs", transient: bool = False
) -> Iterator[SweepProgress]:
    progress = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[failed]} failed"),
        TextColumn("elapsed"),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        transient=transient,
        # stderr: the bar must never mix into a table, JSON or CSV printed on stdout.
        console=Console(stderr=True),
    )
    with progress:
        task = progress.add_task(description, total=total, failed=0)
        yield SweepProgress(progress, task)
