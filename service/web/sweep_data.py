"""What the sweep pages show: the results table, the curve bands and the comparison.

Every number comes from the functions the CLI prints with (service.results.summarize,
service.curves.aggregate, service.compare), fed by the dashboard's narrow queries, so a
page and `bplab results` / `bplab compare` never disagree.
"""

from __future__ import annotations

import hashlib
import json
import math
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from sqlalchemy.orm import Session

from service import compare as cmp
from service.curves import Band, Curve, aggregate
from service.db import dashboard_queries as dq
from service.db import repository as repo
from service.db.queries import last_val_accuracy
from service.results import PENDING, SUMMARY_COLUMNS, param_value, summarize
from service.web.errors import BadRequest, NotFoundError
from service.web.pruned_marks import group_marks

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
        # the rule's type, metric and unit word the chart's marks of pruned runs
        "early_terminate": (row.spec or {}).get("early_terminate"),
    }


def group_key(run: dict[str, Any], by: Sequence[str]) -> tuple[Any, ...]:
    """A run's configuration as summarize groups it (param_value of each ``by`` name)."""
    return tuple(param_value(run["config"], name) for name in by)


def group_id(key: tuple[Any, ...]) -> str:
    """A short stable id of a configuration, for URLs and the browser's state."""
    return hashlib.sha1(json.dumps(key, default=str).encode()).hexdigest()[:12]


def group_label(by: Sequence[str], key: tuple[Any, ...]) -> str:
    """ "learning_rate=0.5, hidden=2": floats to 4 significant digits, as the table shows them
    (the filter used by compare keeps the exact values)."""

    def short(v: Any) -> str:
        return f"{v:.4g}" if isinstance(v, float) else str(v)

    return ", ".join(f"{n}={short(v)}" for n, v in zip(by, key, strict=True)) or "all runs"


def parse_statuses(text: str | None) -> list[str] | None:
    """?status=succeeded,diverged as a list; BadRequest on a status no run can have."""
    if not text:
        return None
    names = [s.strip() for s in text.split(",") if s.strip()]
    # "pruned" even before the schema has it: a filter that matches nothing is no error
    allowed = list(dict.fromkeys((*repo.RUN_STATUSES, "pruned")))
    bad = [s for s in names if s not in allowed]
    if bad:
        raise BadRequest(f"status: unknown status {bad[0]!r}; allowed: {', '.join(allowed)}")
    return names


def results_table(
    session: Session, sweep: dict[str, Any], statuses: Sequence[str] | None = None
) -> list[dict[str, Any]]:
    """The rows of `bplab results SWEEP` (best first), each with its configuration's id,
    label, filter (for compare), runs and whether it only diverged."""
    by = sweep["swept"]
    runs = dq.sweep_runs(session, sweep["id"], statuses)
    if any(r["config"].get("validation_split") for r in runs):
        # The runs table has no val_accuracy: `bplab results` reads the last epoch's.
        found = last_val_accuracy(session, sweep["id"])
        for run in runs:
            run["val_accuracy"] = found.get(run["id"])
    keys = _keys(runs, by)
    members: dict[str, list[dict[str, Any]]] = {}
    for run in runs:
        members.setdefault(keys[run["config_key"]][0], []).append(run)
    rows = summarize(runs, by)
    for row in rows:
        key = tuple(row[name] for name in by)
        gid = group_id(key)
        row["group"] = gid
        row["label"] = group_label(by, key)
        row["filter"] = ",".join(f"{n}={v}" for n, v in zip(by, key, strict=True))
        row["only_diverged"] = row["diverged"] > 0 and row["succeeded"] == 0
        row["pruned"] = sum(1 for r in members[gid] if r["status"] == "pruned")
    return rows


def group_runs(session: Session, sweep: dict[str, Any], gid: str) -> list[dict[str, Any]]:
    """The runs of one configuration (id, seed, status), for the table's runs cell: sent
    when asked, since 10,000 of them in the page would double its size."""
    group = groups_of(session, sweep).get(gid)
    if group is None:
        raise BadRequest(f"group: no configuration {gid!r} in sweep {sweep['id']}")
    brief = dq.run_briefs(session, group.run_ids)
    return [
        {"id": rid, "seed": brief[rid][0], "status": brief[rid][1]}
        for rid in group.run_ids
        if rid in brief
    ]


def _keys(runs: Sequence[dict[str, Any]], by: Sequence[str]) -> dict[str, tuple[str, str]]:
    """{config_key: (group id, label)}, worked out once per distinct configuration."""
    out: dict[str, tuple[str, str]] = {}
    for run in runs:
        if run["config_key"] not in out:
            key = group_key(run, by)
            out[run["config_key"]] = (group_id(key), group_label(by, key))
    return out


# sweep id -> (membership stamp, {group id: (label, run ids)}); see groups_of.
_MEMBERS: dict[int, tuple[tuple[int, int], dict[str, Group]]] = {}
_MEMBERS_LOCK = threading.Lock()


@dataclass(frozen=True)
class Group:
    """A configuration of a sweep: its legend label, its runs and how often they record."""

    label: str
    run_ids: list[int]
    log_every: frozenset[int]


def groups_of(session: Session, sweep: dict[str, Any]) -> dict[str, Group]:
    """{group id: Group} of a sweep, cached per process.

    A run's configuration never changes, so this only changes when runs are added; every
    live poll of a 10,000-run sweep would otherwise re-read and re-group all of them.
    """
    stamp = dq.membership_stamp(session, sweep["id"])
    with _MEMBERS_LOCK:
        cached = _MEMBERS.get(sweep["id"])
    if cached is not None and cached[0] == stamp:
        return cached[1]
    runs = dq.sweep_runs(session, sweep["id"])
    keys = _keys(runs, sweep["swept"])
    ids: dict[str, list[int]] = {}
    strides: dict[str, set[int]] = {}
    for run in runs:
        gid = keys[run["config_key"]][0]
        ids.setdefault(gid, []).append(run["id"])
        strides.setdefault(gid, set()).add(max(1, int(run["config"].get("log_every") or 1)))
    labels = dict(keys.values())
    groups = {g: Group(labels[g], ids[g], frozenset(strides[g])) for g in ids}
    with _MEMBERS_LOCK:
        if len(_MEMBERS) >= 32:  # a bound, not a policy: dashboards look at few sweeps
            _MEMBERS.clear()
        _MEMBERS[sweep["id"]] = (stamp, groups)
    return groups


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
    members = groups_of(session, sweep)
    if groups is None:
        groups = default_groups(results_table(session, sweep))
    unknown = [g for g in groups if g not in members]
    if unknown:
        raise BadRequest(f"groups: no configuration {unknown[0]!r} in sweep {sweep['id']}")
    if len(groups) > MAX_CURVES:
        raise BadRequest(f"groups: at most {MAX_CURVES} configurations at once")
    run_ids = [rid for g in groups for rid in members[g].run_ids]
    budget = dq.max_epochs(session, run_ids)
    strides = set().union(*(members[g].log_every for g in groups)) if groups else set()
    # One log_every for all: buckets of a multiple of it end on recorded epochs, which the
    # fast query reads directly (dashboard_queries.decimated_epochs).
    stride = next(iter(strides)) if len(strides) == 1 else 1
    width = stride * max(1, math.ceil(budget / max(1, points) / stride))
    per_run: dict[int, list[tuple[int, float]]] = {}
    rows = dq.decimated_epochs(session, run_ids, metric, width, on_grid=len(strides) == 1)
    for rid, epoch, value in rows:
        per_run.setdefault(rid, []).append((epoch, math.nan if value is None else value))
    bands = {g: _aggregate(members[g].run_ids, per_run) for g in groups}
    out_groups = [
        _band(g, members[g].label, len(members[g].run_ids), bands[g], after) for g in groups
    ]
    pruned = dq.pruned_runs(session, run_ids)
    last = dq.last_epochs(session, [rid for rid, p in pruned.items() if p[1] is None])
    for out in out_groups:
        out["pruned"] = group_marks(bands[out["id"]], members[out["id"]].run_ids, pruned, last)
    return {
        "metric": metric,
        "width": width,
        "max_epochs": budget,
        "after": after,
        "groups": out_groups,
        # every pruned run of the plotted configurations, for the list under the chart
        "pruned": [
            {"run": r["run"], "group": out["id"], "epoch": mark["epoch"]}
            for out in out_groups
            for mark in out["pruned"]
            for r in mark["runs"]
        ],
    }


def _aggregate(run_ids: list[int], per_run: dict[int, list[tuple[int, float]]]) -> Band | None:
    """The configuration's mean and band over the runs that recorded something."""
    curves = []
    for rid in run_ids:
        pts = per_run.get(rid)
        if pts:
            curves.append(Curve(np.array([e for e, _ in pts]), np.array([v for _, v in pts])))
    return aggregate(curves) if curves else None


def _band(gid: str, label: str, n_runs: int, band: Band | None, after: int) -> dict[str, Any]:
    out: dict[str, Any] = {"id": gid, "label": label, "n_runs": n_runs, "epochs": []}
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
