"""Per-configuration summaries of a sweep: the numbers `bplab results` and `sweep run` print."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

TERMINAL = ("succeeded", "diverged", "failed", "cancelled", "pruned")
PENDING = ("queued", "running")

SUMMARY_COLUMNS = (
    "seeds",
    "succeeded",
    "diverged",
    "failed",
    "cancelled",
    "pruned",
    "pending",
    "final_loss_mean",
    "final_loss_sd",
    "best_loss",
    "accuracy_mean",
    "val_loss_mean",
    "val_accuracy_mean",
    "success_rate",
    "solved_epoch_q1",
    "solved_epoch_median",
    "solved_epoch_q3",
    # patience (per-run early stopping): runs it stopped, their median stop and best epochs
    "stopped",
    "stopped_epoch_median",
    "best_epoch_median",
    "wall_time_mean_s",
)


def param_value(config: dict[str, Any], name: str) -> Any:
    """A parameter as it is shown and grouped: hidden layers as "4-4", everything else as is."""
    value = config.get(name)
    if name == "hidden" and isinstance(value, list):
        return "-".join(str(v) for v in value) if value else "none"
    if isinstance(value, list | dict):
        return str(value)
    return value


def summarize(
    runs: Sequence[dict[str, Any]], by: Sequence[str], *, sort: str | None = None
) -> list[dict[str, Any]]:
    """One row per distinct value of ``by`` over ``runs`` (dicts with config and summary fields).

    ``seeds`` counts every run of the group, ``pending`` those still queued or running; the
    success rate is over the runs that are no longer pending (a run that has not finished yet
    has neither solved nor failed to). Rows come sorted best first: highest success rate,
    then fewest epochs to solve, then lowest final loss; ``sort`` names a column to sort by
    instead (prefix ``-`` for descending).
    """
    groups: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
    for run in runs:
        key = tuple(param_value(run["config"], name) for name in by)
        groups.setdefault(key, []).append(run)
    rows = [
        _summary_row(dict(zip(by, key, strict=True)), members) for key, members in groups.items()
    ]
    return sort_rows(rows, sort)


def sort_rows(rows: list[dict[str, Any]], sort: str | None) -> list[dict[str, Any]]:
    if sort:
        descending = sort.startswith("-")
        column = sort.lstrip("-")
        present = [r for r in rows if _sortable(r.get(column))]
        missing = [r for r in rows if not _sortable(r.get(column))]
        present.sort(key=lambda r: r[column], reverse=descending)
        return present + missing

    def best_first(row: dict[str, Any]) -> tuple[float, float, float]:
        return (
            -(row["success_rate"] or 0.0),
            _or_inf(row["solved_epoch_median"]),
            _or_inf(row["final_loss_mean"]),
        )

    return sorted(rows, key=best_first)


def _summary_row(params: dict[str, Any], runs: list[dict[str, Any]]) -> dict[str, Any]:
    status = [r["status"] for r in runs]
    decided = sum(1 for s in status if s not in PENDING)
    finished = [r for r in runs if r["status"] in ("succeeded", "diverged")]
    final = np.array([_nan(r.get("final_loss")) for r in finished], dtype=float)
    best = np.array([_nan(r.get("best_loss")) for r in finished], dtype=float)
    acc = np.array([r["accuracy"] for r in finished if r.get("accuracy") is not None], dtype=float)
    val_loss = np.array([_nan(r.get("val_loss")) for r in finished], dtype=float)
    val_acc = np.array([_nan(r.get("val_accuracy")) for r in finished], dtype=float)
    # A group none of whose runs has stop_within never records a solved epoch: its success
    # rate is unknown, not 0%.
    tracked = any(r["config"].get("stop_within") is not None for r in runs)
    solved = np.array(
        [r["solved_epoch"] for r in runs if r.get("solved_epoch") is not None], dtype=float
    )
    wall = np.array(
        [r["wall_time_s"] for r in runs if r.get("wall_time_s") is not None], dtype=float
    )
    q1, median, q3 = np.percentile(solved, [25, 50, 75]) if solved.size else (None, None, None)
    stopped = [r["stopped_epoch"] for r in runs if r.get("stopped_epoch") is not None]
    best_epochs = [r["best_epoch"] for r in finished if r.get("best_epoch") is not None]
    row = dict(params)
    row.update(
        seeds=len(runs),
        succeeded=status.count("succeeded"),
        diverged=status.count("diverged"),
        failed=status.count("failed"),
        cancelled=status.count("cancelled"),
        pruned=status.count("pruned"),  # early_terminate (issue 15)
        pending=sum(status.count(s) for s in PENDING),
        final_loss_mean=_stat(np.nanmean, final),
        final_loss_sd=_stat(lambda a: np.nanstd(a, ddof=1), final, min_size=2),
        best_loss=_stat(np.nanmin, best),
        accuracy_mean=float(acc.mean()) if acc.size else None,
        val_loss_mean=_stat(np.nanmean, val_loss),
        val_accuracy_mean=_stat(np.nanmean, val_acc),
        success_rate=solved.size / decided if decided and tracked else None,
        solved_epoch_q1=_num(q1),
        solved_epoch_median=_num(median),
        solved_epoch_q3=_num(q3),
        stopped=len(stopped),
        stopped_epoch_median=float(np.median(stopped)) if stopped else None,
        best_epoch_median=float(np.median(best_epochs)) if best_epochs else None,
        wall_time_mean_s=float(wall.mean()) if wall.size else None,
    )
    return row


def _stat(fn: Any, values: np.ndarray, *, min_size: int = 1) -> float | None:
    finite = values[~np.isnan(values)]
    if finite.size < min_size:
        return None
    with np.errstate(invalid="ignore", over="ignore"):
        return float(fn(finite))


def _nan(value: Any) -> float:
    return math.nan if value is None else float(value)


def _num(value: Any) -> float | None:
    return None if value is None else float(value)


def _or_inf(value: float | None) -> float:
    return math.inf if value is None or math.isnan(value) else value


def _sortable(value: Any) -> bool:
    return value is not None and not (isinstance(value, float) and math.isnan(value))


def display_rows(
    rows: Sequence[dict[str, Any]], by: Sequence[str]
) -> tuple[list[dict[str, Any]], list[str]]:
    """The summary folded into fewer, readable columns for a terminal table (JSON/CSV keep all).

    Columns that would be empty everywhere are left out: cancelled and pending counts in a
    finished sweep, validation figures without a validation split, and the solved columns
    when no run tracks solving (stop_within null), where "0%" would be a false statement.
    """
    extra = [c for c in ("cancelled", "pruned", "pending") if any(row.get(c) for row in rows)]
    val = [
        label
        for label, key in (("val loss", "val_loss_mean"), ("val acc", "val_accuracy_mean"))
        if any(row.get(key) is not None for row in rows)
    ]
    solving = any(row["success_rate"] is not None for row in rows)
    # patience: how many seeds it stopped and where (median), and the median best epoch
    early = [
        label
        for label, key in (("stopped at", "stopped"), ("best epoch", "best_epoch_median"))
        if any(row.get(key) for row in rows)
    ]
    out = []
    for row in rows:
        shown = {name: row[name] for name in by}
        shown["seeds"] = row["seeds"]
        shown["ok/div/fail"] = f"{row['succeeded']}/{row['diverged']}/{row['failed']}"
        shown.update({c: row[c] for c in extra})
        shown["final loss"] = _mean_sd(row["final_loss_mean"], row["final_loss_sd"])
        shown["best loss"] = row["best_loss"]
        shown["accuracy"] = row["accuracy_mean"]
        shown["val loss"] = row["val_loss_mean"]
        shown["val acc"] = row["val_accuracy_mean"]
        shown["solved"] = None if row["success_rate"] is None else f"{row['success_rate']:.0%}"
        shown["epochs to solve"] = _median_iqr(
            row["solved_epoch_median"], row["solved_epoch_q1"], row["solved_epoch_q3"]
        )
        shown["stopped at"] = _stopped(row["stopped"], row["stopped_epoch_median"])
        shown["best epoch"] = row["best_epoch_median"]
        shown["wall s"] = row["wall_time_mean_s"]
        out.append(shown)
    columns = [
        *by,
        "seeds",
        "ok/div/fail",
        *extra,
        "final loss",
        "best loss",
        "accuracy",
        *val,
        *(("solved", "epochs to solve") if solving else ()),
        *early,
        "wall s",
    ]
    return out, columns


# What a narrow terminal loses first from the table above: the figures read least often.
DISPLAY_DROP = ("wall s", "best loss", "val acc", "cancelled", "epochs to solve", "seeds")


def _mean_sd(mean: float | None, sd: float | None) -> str | None:
    if mean is None:
        return None
    return f"{mean:.4g}" if sd is None else f"{mean:.4g} ± {sd:.2g}"


def _median_iqr(median: float | None, q1: float | None, q3: float | None) -> str | None:
    if median is None:
        return None
    return f"{median:g} [{q1:g}–{q3:g}]"


def _stopped(count: int, median: float | None) -> str | None:
    """Runs patience stopped and their median stop epoch: "2 @ 87"."""
    return None if not count or median is None else f"{count} @ {median:g}"
