"""The Python API: the same queries the CLI prints, as pandas DataFrames (issue 19).

    from service import api

    api.sweeps()                      # one row per sweep: counts by status, tags, note
    runs = api.runs(1)                # one row per run, one column per parameter and metric
    curves = api.curves(1)            # long: run_id, epoch, loss, accuracy, val_loss, ...
    W = api.weights(runs.run_id[0])   # {"W1": array, "b1": array, ...}
    api.best(1)                       # the `bplab best` answer, as a dict
    sweep_id = api.submit({"dataset": "xor", "parameters": {"learning_rate": [0.5, 1.0]}})

The database is found as the CLI finds it: ``db=`` (the CLI's ``--db``), else
BPLAB_DATABASE_URL, else ``database_url`` in bplab.toml, else ``sqlite:///bplab.db``. Readers
never create or lock a SQLite file. A sweep or run that does not exist is a LookupError.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from service.config import get_settings, load_settings
from service.db import queries
from service.db import repository as repo
from service.db.models import PATIENCE_FIELDS, SUMMARY_METRICS
from service.db.session import session_scope, sqlite_file
from service.records import run_record, sweep_record
from service.results import param_value

EPOCH_COLUMNS = ("loss", "accuracy", "val_loss", "val_accuracy", "max_error")
# The run fields a runs() frame has besides the parameters, in this order.
RUN_COLUMNS = (
    "run_id",
    "sweep_id",
    "status",
    "seed",
    "epochs_run",
    *SUMMARY_METRICS,
    *PATIENCE_FIELDS,
    "wall_time_s",
    "attempt",
    "worker",
    "error",
    "created_at",
    "started_at",
    "finished_at",
)


def database_url(db: str | None = None) -> str:
    """The database URL the CLI would use with ``--db db`` (None: no option given)."""
    return load_settings({"database_url": db}).database_url if db else get_settings().database_url


def _has_file(url: str) -> bool:
    path = sqlite_file(url)
    return path is None or path.exists()


def sweeps(
    db: str | None = None,
    *,
    name: str | None = None,
    dataset: str | None = None,
    tags: Mapping[str, str | None] | None = None,
) -> pd.DataFrame:
    """One row per sweep, as `bplab sweep list --format json`: id, name, dataset, method,
    backend, runs, created_at, a count per status, tags (a dict) and note. Filters as the
    CLI's --name, --dataset and --tag (a value None: the key only)."""
    from service.management import sweep_rows

    url = database_url(db)
    rows: list[dict[str, Any]] = []
    if _has_file(url):  # no file, no sweeps: a reader never creates it
        with session_scope(url, readonly=True) as session:
            wanted = list((tags or {}).items())
            rows = sweep_rows(session, name=name, dataset=dataset, tags=wanted)
    frame = pd.DataFrame(rows)
    if "created_at" in frame:
        frame["created_at"] = pd.to_datetime(frame["created_at"], utc=True)
    return frame


def _sweep_and_runs(url: str, sweep_id: int) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    if not _has_file(url):
        raise LookupError(f"sweep {sweep_id} does not exist (no database at {sqlite_file(url)})")
    with session_scope(url, readonly=True) as session:
        row = repo.get_sweep(session, sweep_id)
        if row is None:
            raise LookupError(f"sweep {sweep_id} does not exist")
        sweep = sweep_record(row)
        records = [run_record(r) for r in repo.list_runs(session, sweep_id)]
    return sweep, records


def runs(sweep_id: int, db: str | None = None) -> pd.DataFrame:
    """One row per run of the sweep (by id): run_id, sweep_id, status, seed, then one column
    per parameter (hidden layers as "4-4", as the SQL columns and the results tables write
    them), then the summary metrics and the run's bookkeeping (RUN_COLUMNS)."""
    _sweep, records = _sweep_and_runs(database_url(db), sweep_id)
    names = list(dict.fromkeys(k for r in records for k in r["params"]))
    rows = []
    for r in records:
        row = {"run_id": r["id"], **{k: r[k] for k in RUN_COLUMNS[1:4]}}
        row.update({p: param_value(r["params"], p) for p in names})
        row.update({k: r[k] for k in RUN_COLUMNS[4:]})
        rows.append(row)
    columns = [*RUN_COLUMNS[:4], *names, *RUN_COLUMNS[4:]]
    frame = pd.DataFrame(rows, columns=columns)
    for stamp in ("created_at", "started_at", "finished_at"):
        frame[stamp] = pd.to_datetime(frame[stamp], utc=True, format="ISO8601")
    return frame


def curves(
    sweep_id: int | None = None,
    *,
    run_ids: Iterable[int] | None = None,
    db: str | None = None,
) -> pd.DataFrame:
    """Every recorded epoch of a sweep (or of some runs), long: run_id, epoch and the
    metrics of `bplab run curve` (a metric not recorded is NaN), ordered by run and epoch."""
    if (sweep_id is None) == (run_ids is None):
        raise ValueError("give a sweep id or run_ids=, not both")
    url = database_url(db)
    if sweep_id is not None:
        _sweep_and_runs(url, sweep_id)  # LookupError when there is no such sweep
    with session_scope(url, readonly=True) as session:
        rows = queries.epoch_metric_rows(
            session,
            EPOCH_COLUMNS,
            sweep_id=sweep_id,
            run_ids=None if run_ids is None else [int(r) for r in run_ids],
        )
    frame = pd.DataFrame(rows, columns=["run_id", "epoch", *EPOCH_COLUMNS])
    return frame.astype({c: float for c in EPOCH_COLUMNS})


def weights(run_id: int, db: str | None = None) -> dict[str, np.ndarray]:
    """A finished run's weights as `bplab run weights` writes them: W1, b1, W2, b2, ..."""
    url = database_url(db)
    with session_scope(url, readonly=True) as session:
        if repo.get_run(session, run_id) is None:
            raise LookupError(f"run {run_id} does not exist")
        try:
            arrays = repo.load_weights(session, run_id)
        except repo.NotFound:
            raise LookupError(
                f"run {run_id} has no stored weights (only finished runs have)"
            ) from None
    return {f"{'W' if i % 2 == 0 else 'b'}{i // 2 + 1}": a for i, a in enumerate(arrays)}


def best(
    sweep_id: int,
    *,
    metric: str | None = None,
    goal: str | None = None,
    aggregate: str = "mean",
    db: str | None = None,
) -> dict[str, Any]:
    """`bplab best SWEEP --format json`: the best configuration by ``metric`` over its seeds,
    its spread, the runner-up and their comparison paired by seed. ValueError on bad input."""
    from service.best import best as find_best

    sweep, records = _sweep_and_runs(database_url(db), sweep_id)
    return find_best(sweep, records, metric=metric, goal=goal, aggregate=aggregate)


def submit(
    spec: Mapping[str, Any],
    *,
    db: str | None = None,
    wait: bool = True,
    workers: int | None = None,
    base_dir: str | Path | None = None,
    max_runs: int | None = None,
) -> int:
    """Record a sweep from a spec given as a dict (the YAML file's content); its id.

    With BPLAB_BROKER_URL set the runs go to the Celery workers (as `bplab sweep submit`);
    otherwise they are trained here in a local process pool when ``wait`` (as `bplab sweep
    run`), or left queued for `bplab sweep resume ID`. csv:/npz: paths are relative to
    ``base_dir`` (default: the working directory). A bad spec raises SpecError (one line).
    """
    from service.dispatch import submit_spec
    from service.local import default_workers
    from service.spec import DEFAULT_MAX_RUNS, parse_spec
    from service.sweeps import create_sweep_from_spec, run_queued_locally

    parsed = parse_spec(
        dict(spec),
        source="<spec>",
        max_runs=max_runs or DEFAULT_MAX_RUNS,
        base_dir=base_dir or Path.cwd(),
        default_name="sweep",
    )
    if parsed.adaptive:
        raise ValueError(f"a {parsed.method} search is driven by `bplab sweep run SPEC`")
    settings = load_settings({"database_url": db}) if db else get_settings()
    if settings.broker_url:
        return submit_spec(parsed, settings.database_url, settings.broker_url).sweep_id
    with session_scope(settings.database_url) as session:
        sweep_id = create_sweep_from_spec(session, parsed, backend="local")
    if wait:
        url = settings.database_url
        run_queued_locally(sweep_id, workers=workers or default_workers(), url=url)
    return sweep_id


__all__: Sequence[str] = ("best", "curves", "database_url", "runs", "submit", "sweeps", "weights")
