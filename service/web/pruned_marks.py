"""Where an early_terminate rule stopped runs, as marks on the sweep page's curves (issue 17).

The chart draws one curve per configuration, the mean over its seeds, so a mark sits on that
curve: at the epoch where runs of the configuration were pruned, at the curve's value there.
One mark per configuration and epoch, carrying every run pruned there with the value the rule
read and the threshold it missed (stored on the run by service.pruning):

- unit: config: the seeds stop together, so there is one mark, at the end of the curve, and
  the value is the configuration's (its seeds' mean or median), the same on every run.
- unit: run: each seed stops on its own; a mark says how many seeds stopped at that epoch,
  each with its own value, and the mean goes on over the others (a stopped seed's last value
  is carried, as in ``service.curves.aggregate``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from service.curves import Band

# (seed, pruned_epoch, pruned_value, pruned_threshold), as dashboard_queries.pruned_runs reads
PrunedRun = tuple[int, int | None, float | None, float | None]


def shown_float(value: float | None) -> float | str | None:
    """A float for JSON: non-finite values as the text the results table uses ("inf")."""
    if value is None:
        return None
    return value if math.isfinite(value) else str(value)


def group_marks(
    band: Band | None,
    run_ids: Sequence[int],
    pruned: dict[int, PrunedRun],
    last_epochs: dict[int, int],
) -> list[dict[str, Any]]:
    """The marks of one configuration, by epoch: {epoch, y, runs: [{run, seed, value,
    threshold}]}. y is the configuration's mean at that epoch, None where the curve has no
    finite value there (the mark is then only listed, not drawn)."""
    by_epoch: dict[int, list[dict[str, Any]]] = {}
    for rid in run_ids:
        if rid not in pruned:
            continue
        seed, epoch, value, threshold = pruned[rid]
        # a run pruned before pruned_epoch was recorded: where its curve ends
        stop = epoch if epoch is not None else last_epochs.get(rid)
        if stop is None:
            continue
        by_epoch.setdefault(int(stop), []).append(
            {
                "run": rid,
                "seed": seed,
                "value": shown_float(value),
                "threshold": shown_float(threshold),
            }
        )
    return [
        {"epoch": epoch, "y": mean_at(band, epoch), "runs": by_epoch[epoch]}
        for epoch in sorted(by_epoch)
    ]


def mean_at(band: Band | None, epoch: int) -> float | None:
    """The band's mean at ``epoch``: its last point at or before it (as the curve is drawn)."""
    if band is None:
        return None
    i = int(np.searchsorted(band.epochs, epoch, side="right")) - 1
    if i < 0:
        return None
    value = float(band.mean[i])
    return value if math.isfinite(value) else None
