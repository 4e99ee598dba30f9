"""What the sweep pages show: the results table, the curve bands and the comparison.

Every number comes from the functions the CLI prints with (service.results.summarize,
service.curves.aggregate, service.compare), fed by the dashboard's narrow queries, so a
page and `bplab results` / `bplab compare` never disagree.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from sqlalchemy.orm import Session

from service import compare as cmp
from service.curves import Curve, aggregate
from service.db import dashboard_queries as dq
from service.db import repository as repo
from service.results import PENDING, SUMMARY_COLUMNS, param_value, summarize
from service.web.errors import BadRequest, NotFoundError

CURVE_METRICS = ("loss", "accuracy", "val_loss", "val_accuracy")
# Curves drawn when the page opens: the best configurations only. Hundreds of bands on one
# chart are unreadable, and this bounds the epoch rows the first paint reads.
DEFAULT_CURVES = 8
MAX_CURVES = 40
MAX_POINTS = 4000


def sweep_header(session: Session, sweep_id: int) -> dict[str, Any]:
    """The sweep's own fields, its runs by status and timing; NotFoundError if none."""
    row = repo.get_sweep(session, sweep_id) if 0 < sweep_id < 2**31 else None
    if row is None:
        raise NotFoundError(f"sweep {sweep_id} does not exist")
    counts = dq.sweep_status_counts(session, sweep_id)
    timing = repo.sweep_timing(session, sweep_id)
    return {
        "id": row.id,
        "name": row.name,
        "dataset": row.dataset,
        "method": row.method,
        "backend": row.backend,
        "swept": list(row.swept),
        "n_runs": row.n_runs,
        "created_at": row.created_at,
        "counts": {s: counts[s] for s in dq.status_order(list(counts))},
        "pending": sum(counts.get(s, 0) for s in PENDING),
        "elapsed_s": timing["elapsed_s"],
    }


def group_key(run: dict[str, Any], by: Sequence[str]) -> tuple[Any, ...]:
    """A run's configuration as summarize groups it (param_value of each ``by`` name)."""
    return tuple(param_value(run["config"], name) for name in by)


def group_id(key: tuple[Any, ...]) -> str:
    """A short stable id of a configuration, for URLs and the browser's state."""
    return hashlib.sha1(json.dumps(key, default=str).encode()).hexdigest()[:12]


def group_label(by: Sequence[str], key: tuple[Any, ...]) -> str:
    return ", ".join(f"{n}={v}" for n, v in zip(by, key, strict=True)) or "all runs"


def parse_statuses(text: str | None) -> list[str] | None:
    """?status=succeeded,diverged as a list; BadRequest on a status no run can have."""
    if not text:
        return None
    names = [s.strip() for s in text.split(",") if s.strip()]
    allowed = (*repo.RUN_STATUSES, "pruned")
    bad = [s for s in names if s not in allowed]
    if bad:
        raise BadRequest(f"status: unknown status {bad[0]!r}; allowed: {', '.join(allowed)}")
    return names


def results_table(
    session: Session, sweep: dict[str, Any], statuses: Sequence[str] | None = None
) -> list[dict[str, Any]]:
    """The rows of `bplab results SWEEP` (best first), each with its configuration's id,
    label, filter (for compare), run ids and whether it only diverged."""
    by = sweep["swept"]
    runs = dq.sweep_runs(session, sweep["id"], statuses)
    members: dict[str, list[dict[str, Any]]] = {}
    for run in runs:
        members.setdefault(group_id(group_key(run, by)), []).append(run)
    rows = summarize(runs, by)
    for row in rows:
        key = tuple(row[name] for name in by)
        gid = group_id(key)
        row["group"] = gid
        row["label"] = group_label(by, key)
        row["filter"] = ",".join(f"{n}={v}" for n, v in zip(by, key, strict=True))
        row["runs"] = [
            {"id": r["id"], "seed": r["seed"], "status": r["status"]} for r in members[gid]
        ]
        row["only_diverged"] = row["diverged"] > 0 and row["succeeded"] == 0
        row["pruned"] = sum(1 for r in members[gid] if r["status"] == "pruned")
    return rows


def table_columns(sweep: dict[str, Any]) -> list[str]:
    return [*sweep["swept"], *SUMMARY_COLUMNS]


def default_groups(rows: Sequence[dict[str, Any]]) -> list[str]:
    """The best configurations that did not only diverge (their inf/NaN would flatten the
    axis): the chart's opening selection."""
    return [r["group"] for r in rows if not r["only_diverged"]][:DEFAULT_CURVES]


def parse_int(text: str | None, name: str, default: int, low: int, high: int) -> int:
    if text is None or text == "":
        return default
    try:
        value = int(text)
    except ValueError:
        raise BadRequest(f"{name}: {text!r} is not a whole number") from None
    if not low <= value <= high:
        raise BadRequest(f"{name}: {value} is outside {low}..{high}")
    return value


def parse_metric(text: str | None) -> str:
    metric = text or "loss"
    if metric not in CURVE_METRICS:
        raise BadRequest(f"metric: unknown metric {metric!r}; allowed: {', '.join(CURVE_METRICS)}")
    return metric


def finite_list(values: np.ndarray) -> list[float | None]:
    """Floats for JSON, with None where the value is not finite (a gap in the chart)."""
    return [float(v) if math.isfinite(v) else None for v in values.tolist()]


def curve_bands(
    session: Session,
    sweep: dict[str, Any],
    metric: str,
    groups: Sequence[str] | None,
    *,
    after: int = 0,
    points: int = 600,
) -> dict[str, Any]:
    """Mean ± sd over seeds per configuration, decimated to about ``points`` epochs; only
    epochs after ``after`` are sent (live updates send what is new)."""
    by = sweep["swept"]
    members: dict[str, list[dict[str, Any]]] = {}
    labels: dict[str, str] = {}
    for run in dq.sweep_runs(session, sweep["id"]):
        key = group_key(run, by)
        gid = group_id(key)
        members.setdefault(gid, []).append(run)
        labels[gid] = group_label(by, key)
    if groups is None:
        groups = default_groups(results_table(session, sweep))
    unknown = [g for g in groups if g not in members]
    if unknown:
        raise BadRequest(f"groups: no configuration {unknown[0]!r} in sweep {sweep['id']}")
    if len(groups) > MAX_CURVES:
        raise BadRequest(f"groups: at most {MAX_CURVES} configurations at once")
    run_ids = [r["id"] for g in groups for r in members[g]]
    budget = dq.max_epochs(session, run_ids)
    width = max(1, math.ceil(budget / max(1, points)))
    per_run: dict[int, list[tuple[int, float]]] = {}
    for rid, epoch, value in dq.decimated_epochs(session, run_ids, metric, width):
        per_run.setdefault(rid, []).append((epoch, math.nan if value is None else value))
    out_groups = [_band(gid, labels[gid], members[gid], per_run, after) for gid in groups]
    last = dq.last_epochs(
        session, [r["id"] for g in groups for r in members[g] if r["status"] == "pruned"]
    )
    pruned = [
        {"run": rid, "group": g, "epoch": last.get(rid)}
        for g in groups
        for rid in (r["id"] for r in members[g] if r["status"] == "pruned")
    ]
    return {
        "metric": metric,
        "width": width,
        "max_epochs": budget,
        "after": after,
        "groups": out_groups,
        "pruned": pruned,
    }


def _band(
    gid: str,
    label: str,
    runs: list[dict[str, Any]],
    per_run: dict[int, list[tuple[int, float]]],
    after: int,
) -> dict[str, Any]:
    curves = []
    for r in runs:
        pts = per_run.get(r["id"])
        if pts:
            curves.append(Curve(np.array([e for e, _ in pts]), np.array([v for _, v in pts])))
    band = aggregate(curves) if curves else None
    out: dict[str, Any] = {"id": gid, "label": label, "n_runs": len(runs), "epochs": []}
    out.update(mean=[], low=[], high=[], last_epoch=0)
    if band is None:
        return out
    keep = band.epochs > after
    out["epochs"] = band.epochs[keep].tolist()
    out["mean"] = finite_list(band.mean[keep])
    out["low"] = finite_list(band.low[keep])
    out["high"] = finite_list(band.high[keep])
    out["n_runs"] = band.n_runs
    out["last_epoch"] = int(band.epochs[-1])
    return out


def compare_view(
    session: Session,
    sweep_id: int,
    a_text: str,
    b_text: str,
    sweep_b: int | None,
    metrics: Sequence[str],
) -> dict[str, Any]:
    """What `bplab compare SWEEP --a A --b B [--sweep-b S] --metric ...` reports."""
    bad = [m for m in metrics if m not in cmp.METRICS]
    if bad:
        raise BadRequest(f"metric: unknown metric {bad[0]!r}; allowed: {', '.join(cmp.METRICS)}")
    b_sweep = sweep_b if sweep_b is not None else sweep_id
    sweep_header(session, b_sweep)  # NotFoundError for an unknown sweep B
    if b_sweep == sweep_id and not (a_text and b_text):
        raise BadRequest("choose both A and B (or a second sweep for B)")
    try:
        a_runs = cmp.select(
            dq.sweep_runs(session, sweep_id), cmp.parse_filters(a_text), "A", a_text
        )
        b_runs = cmp.select(dq.sweep_runs(session, b_sweep), cmp.parse_filters(b_text), "B", b_text)
        result = cmp.compare(a_runs, b_runs, metrics or cmp.DEFAULT_METRICS)
    except cmp.CompareError as exc:
        raise BadRequest(str(exc)) from None
    result["a"] = {"sweep_id": sweep_id, "filter": a_text, "runs": len(a_runs)}
    result["b"] = {"sweep_id": b_sweep, "filter": b_text, "runs": len(b_runs)}
    return result
