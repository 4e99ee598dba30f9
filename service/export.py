"""`bplab export`: a sweep's runs (parameters and summaries) and optionally its curves, to files.

CSV: one row per run with every configuration key as its own column (lists and dicts as
JSON text), and with --curves a second file NAME.curves.csv with one row per run and epoch.
JSON: {"sweep": ..., "runs": [...], "curves": [...]} where each run keeps its parameters
under "params" and each curve is one run's columns ({"run_id", "epoch": [...], "loss": [...]}).
JSON has no NaN or infinity: they are written as the strings "NaN", "Infinity" and
"-Infinity", which float() reads back.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy.orm import Session

from service.curves import METRICS
from service.db.queries import sweep_curve_rows
from service.records import RUN_FIELDS

STAMPS = ("created_at", "started_at", "finished_at")
RUN_COLUMNS = (*RUN_FIELDS, *STAMPS)
CURVE_COLUMNS = ("run_id", "epoch", *METRICS)


def curves_path(path: Path) -> Path:
    """out.csv -> out.curves.csv"""
    return path.with_name(f"{path.stem}.curves{path.suffix}")


def param_columns(runs: Sequence[dict[str, Any]]) -> list[str]:
    """Every configuration key, in first-seen order (runs of a sweep normally share them)."""
    seen: dict[str, None] = {}
    for r in runs:
        seen.update(dict.fromkeys(r["params"]))
    # A parameter named like a run field would overwrite it in a flat row.
    return [f"param_{k}" if k in RUN_COLUMNS else k for k in seen]


def flat_run(run: dict[str, Any]) -> dict[str, Any]:
    row = {k: run.get(k) for k in RUN_COLUMNS}
    for k, v in run["params"].items():
        row[f"param_{k}" if k in RUN_COLUMNS else k] = v
    return row


def _cell(value: Any) -> Any:
    if isinstance(value, list | tuple | dict):
        return json.dumps(value)
    return "" if value is None else value


def write_csv(
    path: Path, rows: Sequence[dict[str, Any]] | Iterator[dict[str, Any]], columns: Sequence[str]
) -> int:
    n = 0
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(
            f, fieldnames=list(columns), extrasaction="ignore", lineterminator="\n"
        )
        writer.writeheader()
        for row in rows:
            writer.writerow({c: _cell(row.get(c)) for c in columns})
            n += 1
    return n


def curve_rows(session: Session, sweep_id: int) -> list[dict[str, Any]]:
    """Every recorded epoch of the sweep, ordered by run and epoch, in one query.

    Unlike service.curves.load_curves this keeps NULL (not recorded) apart from NaN.
    """
    return sweep_curve_rows(session, sweep_id, CURVE_COLUMNS)


def curve_columns(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per-epoch rows folded into one dict of columns per run, for JSON."""
    out: dict[int, dict[str, Any]] = {}
    for row in rows:
        cols = out.get(row["run_id"])
        if cols is None:
            cols = out[row["run_id"]] = {
                "run_id": row["run_id"],
                **{c: [] for c in CURVE_COLUMNS[1:]},
            }
        for c in CURVE_COLUMNS[1:]:
            cols[c].append(row[c])
    return list(out.values())


def jsonable(value: Any) -> Any:
    if isinstance(value, float | np.floating):
        v = float(value)
        if math.isnan(v):
            return "NaN"
        if math.isinf(v):
            return "Infinity" if v > 0 else "-Infinity"
        return v
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.ndarray):
        return [jsonable(v) for v in value.tolist()]
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    return value


def write_json(
    path: Path,
    sweep: dict[str, Any],
    runs: Sequence[dict[str, Any]],
    curves: Sequence[dict[str, Any]] | None,
) -> None:
    doc: dict[str, Any] = {
        "sweep": sweep,
        "runs": [{**{k: r.get(k) for k in RUN_COLUMNS}, "params": r["params"]} for r in runs],
    }
    if curves is not None:
        doc["curves"] = curve_columns(curves)
    with path.open("w") as f:
        json.dump(jsonable(doc), f, indent=1, allow_nan=False)
