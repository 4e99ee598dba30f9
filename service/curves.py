"""Per-epoch curves of a sweep: loaded in one query, and averaged over the seeds of a group.

A sweep's runs rarely share their recorded epochs: a run that solves XOR at epoch 227 stops
there (stop_on_solve) while another goes on to 2000, and every run records its last epoch
besides every log_every-th. Averaging therefore happens on the union of the recorded
epochs, with each run's value at an epoch being its last recorded value at or before it:
a run that stopped early holds its final value from then on. That keeps a group's mean
from jumping when its fast seeds stop (averaging only the runs still going would show the
slow seeds alone at the end, and a mean of solved runs that seems to get worse).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from sqlalchemy.orm import Session

from service.db.queries import epoch_metric_rows
from service.results import param_value

METRICS = ("loss", "accuracy", "val_loss", "val_accuracy", "max_error")


@dataclass(frozen=True)
class Curve:
    """One run's recorded epochs (ascending) and one metric's values there (NaN if missing)."""

    epochs: np.ndarray
    values: np.ndarray


def load_curves(
    session: Session,
    *,
    sweep_id: int | None = None,
    run_ids: Iterable[int] | None = None,
    metrics: Sequence[str] = ("loss",),
) -> dict[int, dict[str, np.ndarray]]:
    """{run id: {"epoch": ints, metric: floats, ...}} for a whole sweep or some runs, one query
    (NaN where a metric was not recorded)."""
    bad = [m for m in metrics if m not in METRICS]
    if bad:
        raise ValueError(f"unknown metric {bad[0]!r}; valid: {', '.join(METRICS)}")
    rows = epoch_metric_rows(session, metrics, sweep_id=sweep_id, run_ids=run_ids)
    if not rows:
        return {}
    run_col = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
    epoch_col = np.fromiter((r[1] for r in rows), dtype=np.int64, count=len(rows))
    value_cols = [
        np.array([np.nan if r[2 + i] is None else r[2 + i] for r in rows], dtype=float)
        for i in range(len(metrics))
    ]
    # Rows are ordered by run: split them where the run id changes.
    starts = np.flatnonzero(np.r_[True, run_col[1:] != run_col[:-1]])
    ends = np.r_[starts[1:], len(rows)]
    out: dict[int, dict[str, np.ndarray]] = {}
    for a, b in zip(starts, ends, strict=True):
        curve = {"epoch": epoch_col[a:b]}
        curve.update({m: col[a:b] for m, col in zip(metrics, value_cols, strict=True)})
        out[int(run_col[a])] = curve
    return out


@dataclass(frozen=True)
class Band:
    """A group's curve: the mean over its runs at each epoch, and a band around it."""

    epochs: np.ndarray
    mean: np.ndarray
    low: np.ndarray
    high: np.ndarray
    n_runs: int


def carried(epochs: np.ndarray, values: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """A run's values on grid: the last recorded value at or before each grid epoch.

    NaN before the run's first recorded epoch; the final value held after its last.
    """
    idx = np.searchsorted(epochs, grid, side="right") - 1
    out = np.full(grid.shape, np.nan)
    ok = idx >= 0
    out[ok] = values[idx[ok]]
    return out


def aggregate(curves: Sequence[Curve], band: str = "sd") -> Band | None:
    """Mean over runs on the union of their epochs, with a band: mean ± sd, or min to max.

    Non-finite values (a diverged run's inf or NaN) are left out of the statistics at the
    epochs where they occur. None when no run has a finite value.
    """
    if band not in ("sd", "minmax"):
        raise ValueError("band must be 'sd' or 'minmax'")
    curves = [c for c in curves if c.epochs.size]
    if not curves:
        return None
    grid = np.unique(np.concatenate([c.epochs for c in curves]))
    stack = np.vstack([carried(c.epochs, c.values, grid) for c in curves])
    stack[~np.isfinite(stack)] = np.nan
    have = ~np.all(np.isnan(stack), axis=0)
    if not have.any():
        return None
    grid, stack = grid[have], stack[:, have]
    mean = np.nanmean(stack, axis=0)
    if band == "minmax":
        low, high = np.nanmin(stack, axis=0), np.nanmax(stack, axis=0)
    else:
        counts = np.sum(~np.isnan(stack), axis=0)
        sd = np.zeros_like(mean)
        many = counts > 1
        sd[many] = np.nanstd(stack[:, many], axis=0, ddof=1)
        low, high = mean - sd, mean + sd
    return Band(grid, mean, low, high, n_runs=len(curves))


def _order(key: tuple[Any, ...]) -> list[tuple[int, Any]]:
    """Numbers in numeric order, before any text (so 0.25 < 0.5 < 2, and "4" < "4-4")."""
    return [
        (0, float(v)) if isinstance(v, int | float) and not isinstance(v, bool) else (1, str(v))
        for v in key
    ]


def group_bands(
    runs: Sequence[Mapping[str, Any]],
    curves: Mapping[int, Mapping[str, np.ndarray]],
    by: Sequence[str],
    metric: str,
    band: str = "sd",
) -> list[tuple[str, Band]]:
    """One (legend label, Band) per distinct value of the ``by`` parameters, in value order.

    The label names the parameters and the number of runs averaged, e.g.
    "learning_rate=0.5, hidden=2 (8)". Runs with no recorded epoch are left out.
    """
    groups: dict[tuple[Any, ...], list[Curve]] = {}
    for r in runs:
        c = curves.get(r["id"])
        if c is not None:
            key = tuple(param_value(r["config"], name) for name in by)
            groups.setdefault(key, []).append(Curve(c["epoch"], c[metric]))
    out = []
    for key, members in sorted(groups.items(), key=lambda kv: _order(kv[0])):
        agg = aggregate(members, band)
        if agg is not None:
            label = ", ".join(f"{n}={_shown(v)}" for n, v in zip(by, key, strict=True))
            label = label or "all runs"
            out.append((f"{label} ({agg.n_runs})", agg))
    return out


def _shown(value: Any) -> Any:
    """A legend value with 4 significant digits (0.1235, not 0.12345678901), as tables print."""
    if isinstance(value, float):
        return f"{value:.4g}"
    return value
