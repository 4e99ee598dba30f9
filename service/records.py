"""Database rows as plain dicts: the shape every CLI output (table, JSON, CSV) starts from."""

from __future__ import annotations

from typing import Any

from service.db.models import PATIENCE_FIELDS, SUMMARY_METRICS

RUN_FIELDS = (
    "id",
    "sweep_id",
    "status",
    "seed",
    "attempt",
    "epochs_run",
    *SUMMARY_METRICS,
    "wall_time_s",
    "worker",
    "error",
    # early_terminate (issue 15): where a pruned run stopped and the threshold it missed
    "pruned_epoch",
    "pruned_value",
    "pruned_threshold",
    # patience / restore_best: the best epoch, and the epoch at which patience stopped the run
    *PATIENCE_FIELDS,
)


def sweep_record(sweep: Any) -> dict[str, Any]:
    """A sweep row as the results commands, `best` and the Python API read it."""
    return {
        "id": sweep.id,
        "name": sweep.name,
        "dataset": sweep.dataset,
        "method": sweep.method,
        "swept": list(sweep.swept),
        "n_runs": sweep.n_runs,
        "backend": sweep.backend,
        "created_at": sweep.created_at.isoformat(),
        "spec": sweep.spec,
    }


def run_record(run: Any) -> dict[str, Any]:
    """A run with its full resolved parameters under ``params`` (the seed is its own field)."""
    record = {name: getattr(run, name) for name in RUN_FIELDS}
    record["params"] = dict(run.config)
    record["config"] = record["params"]
    for stamp in ("created_at", "started_at", "finished_at"):
        value = getattr(run, stamp)
        record[stamp] = value.isoformat() if value is not None else None
    return record


def public_run(record: dict[str, Any]) -> dict[str, Any]:
    """The record without the internal duplicate key, for JSON output."""
    return {k: v for k, v in record.items() if k != "config"}
