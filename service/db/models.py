"""The results schema: sweeps -> runs -> epoch metrics, final weights and checkpoints.

This schema is a public interface (users query it with plain SQL, see the README), and
Alembic migrations are the only way it changes: edit the models, then autogenerate a
revision in migrations/versions and check it by hand.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    false,
    func,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from service.db.types import SafeFloat, UTCDateTime

# Deterministic constraint names, so that migrations can address them on both dialects
# (SQLite's batch mode needs a name to drop or alter a constraint).
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# pruned: stopped early by the sweep's early_terminate rule (service.pruning).
RUN_STATUSES = ("queued", "running", "succeeded", "diverged", "failed", "cancelled", "pruned")
TERMINAL_STATUSES = ("succeeded", "diverged", "failed", "cancelled", "pruned")
# The summary metrics of a run, the ones every reader of results shows (tables, the dashboard,
# the Python API, exports) and a search objective may be computed from.
SUMMARY_METRICS = ("final_loss", "best_loss", "accuracy", "val_loss", "solved_epoch")
# Per-run early stopping (engine.patience): the best epoch, where patience stopped the run.
PATIENCE_FIELDS = ("best_epoch", "stopped_epoch")

# Run columns copied out of the config so that SQL can filter and group on them.
SWEPT_COLUMNS = (
    "dataset",
    "learning_rate",
    "momentum",
    "hidden",
    "cost",
    "activation",
    "output_activation",
    "optimizer",
    "batch_size",
    "weight_decay",
    "init",
    "epochs",
)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


def _now_default() -> Any:
    return func.now()


class Sweep(Base):
    __tablename__ = "sweeps"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    dataset: Mapped[str] = mapped_column(String(500))
    # grid | random; no CHECK so that a new expansion method needs no migration.
    method: Mapped[str] = mapped_column(String(20))
    spec: Mapped[dict[str, Any]] = mapped_column(JSON)  # the validated spec as given
    swept: Mapped[list[str]] = mapped_column(JSON)  # names of the parameters that vary
    n_runs: Mapped[int] = mapped_column(Integer)
    backend: Mapped[str] = mapped_column(String(20))  # local | celery
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, server_default=_now_default())
    note: Mapped[str | None] = mapped_column(Text)  # `bplab sweep note`
    # sha256 of a csv:/npz: dataset's bytes when recorded: more runs are refused once the
    # file has changed, so one sweep never mixes results of two versions of its data.
    data_sha256: Mapped[str | None] = mapped_column(String(64))

    def __repr__(self) -> str:
        return f"Sweep(id={self.id}, name={self.name!r}, n_runs={self.n_runs})"


class Run(Base):
    __tablename__ = "runs"
    __table_args__ = (
        # The status set is closed: a typo in a worker must fail loudly, not strand a run.
        CheckConstraint(
            "status IN ({})".format(", ".join(f"'{s}'" for s in RUN_STATUSES)), name="status"
        ),
        # Progress bars, dispatch and the reconciler all ask "runs of sweep S in status X";
        # its leading column also serves every per-sweep query and the cascade delete.
        Index(None, "sweep_id", "status"),
        # One run per (configuration, seed) cell of a sweep: `sweep extend` may race itself.
        Index("uq_runs_sweep_id_config_key_seed", "sweep_id", "config_key", "seed", unique=True),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    sweep_id: Mapped[int] = mapped_column(ForeignKey("sweeps.id", ondelete="CASCADE"))
    config: Mapped[dict[str, Any]] = mapped_column(JSON)  # the run configuration, no seed
    # sha256 of the canonical JSON of config: the same configuration across seeds (and
    # across sweeps), which is what results tables group by.
    config_key: Mapped[str] = mapped_column(String(64), index=True)
    seed: Mapped[int] = mapped_column(Integer)

    # Swept values copied out of config (service.db.repository.derived_columns).
    dataset: Mapped[str] = mapped_column(String(500), index=True)
    learning_rate: Mapped[float] = mapped_column(SafeFloat, index=True)
    momentum: Mapped[float] = mapped_column(SafeFloat, index=True)
    # "4", "4-4", or "" for no hidden layer: a string so that SQL can GROUP BY it.
    hidden: Mapped[str] = mapped_column(String(200), index=True)
    cost: Mapped[str] = mapped_column(String(40), index=True)
    activation: Mapped[str] = mapped_column(String(40), index=True)
    output_activation: Mapped[str] = mapped_column(String(40), index=True)
    optimizer: Mapped[str] = mapped_column(String(40), index=True)
    batch_size: Mapped[int | None] = mapped_column(Integer, index=True)  # NULL = full batch
    weight_decay: Mapped[float] = mapped_column(SafeFloat, index=True)
    init: Mapped[str] = mapped_column(String(40), index=True)  # "0.3", "xavier", "he"
    epochs: Mapped[int] = mapped_column(Integer, index=True)  # the maximum

    status: Mapped[str] = mapped_column(String(20), default="queued", server_default="queued")
    # Incremented by every claim; writes carry it so a stale attempt is fenced off.
    attempt: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    worker: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, server_default=_now_default())
    started_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    heartbeat_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)  # database time
    # When the run was last put back to 'queued' or last re-published (database time; NULL:
    # never since created_at). The reconciler re-publishes a queued run whose message the
    # broker lost only after a grace period counted from here, so it never floods the queue.
    queued_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    # The attempt counter when `bplab sweep retry` last re-queued the run: attempt -
    # retry_base is the number of tries since, which the maximum number of attempts bounds.
    # (attempt itself never goes down: it is the fencing token.)
    retry_base: Mapped[int] = mapped_column(Integer, default=0, server_default="0")

    epochs_run: Mapped[int | None] = mapped_column(Integer)
    final_loss: Mapped[float | None] = mapped_column(SafeFloat)
    best_loss: Mapped[float | None] = mapped_column(SafeFloat)
    accuracy: Mapped[float | None] = mapped_column(SafeFloat)
    val_loss: Mapped[float | None] = mapped_column(SafeFloat)
    solved_epoch: Mapped[int | None] = mapped_column(Integer)  # first epoch within stop_within
    wall_time_s: Mapped[float | None] = mapped_column(SafeFloat)
    error: Mapped[str | None] = mapped_column(Text)
    # A pruned run: the epoch it was stopped at, its metric value there (its configuration's
    # over seeds for unit: config) and the threshold that value missed (service.pruning).
    pruned_epoch: Mapped[int | None] = mapped_column(Integer)
    pruned_value: Mapped[float | None] = mapped_column(SafeFloat)
    pruned_threshold: Mapped[float | None] = mapped_column(SafeFloat)
    # Per-run early stopping (engine.patience): the epoch of the best monitored value of a run
    # with patience or restore_best (with restore_best its final weights and summary are that
    # epoch's), and the epoch at which patience stopped it (NULL: not stopped so).
    best_epoch: Mapped[int | None] = mapped_column(Integer)
    stopped_epoch: Mapped[int | None] = mapped_column(Integer)
    # `sweep retry --pruned`: train to the end whatever the rule says.
    prune_exempt: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())

    def __repr__(self) -> str:
        return f"Run(id={self.id}, sweep_id={self.sweep_id}, status={self.status!r})"


class EpochMetric(Base):
    """One row per run and recorded epoch.

    (run_id, epoch) is the primary key, with no surrogate id: it is the identity that the
    insert-or-ignore relies on, and one index fewer makes rows smaller and inserts faster.
    On SQLite the table is WITHOUT ROWID for the same reason (rows are stored in the
    primary-key b-tree instead of a rowid table plus a separate key index).
    """

    __tablename__ = "epoch_metrics"
    __table_args__ = {"sqlite_with_rowid": False}

    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True)
    epoch: Mapped[int] = mapped_column(Integer, primary_key=True)  # numbered from 1
    loss: Mapped[float | None] = mapped_column(SafeFloat)
    accuracy: Mapped[float | None] = mapped_column(SafeFloat)
    val_loss: Mapped[float | None] = mapped_column(SafeFloat)
    val_accuracy: Mapped[float | None] = mapped_column(SafeFloat)
    max_error: Mapped[float | None] = mapped_column(SafeFloat)


class RunWeights(Base):
    """Final weights: the arrays written one after another with np.save(allow_pickle=False)."""

    __tablename__ = "run_weights"

    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True)
    data: Mapped[bytes] = mapped_column(LargeBinary)
    shapes: Mapped[list[list[int]]] = mapped_column(JSON)
    dtype: Mapped[str] = mapped_column(String(100))
    sha256: Mapped[str] = mapped_column(String(64))  # of data, checked before every load
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, server_default=_now_default())


class Checkpoint(Base):
    """The latest training state of a run, replaced in place.

    Only the latest is ever resumed from, so keeping one row per run bounds the table at
    one state per run (a 10,000-epoch run checkpointed every 100 epochs would otherwise
    keep 100 copies of its weights and optimizer buffers), and the upsert happens in the
    same transaction as the epoch rows it covers, so the two never disagree.
    """

    __tablename__ = "checkpoints"

    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True)
    attempt: Mapped[int] = mapped_column(Integer)  # the attempt that wrote it
    epoch: Mapped[int] = mapped_column(Integer)  # last completed epoch in the state
    data: Mapped[bytes] = mapped_column(LargeBinary)  # engine TrainState.to_bytes()
    sha256: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, server_default=_now_default())


class SearchTrial(Base):
    """One configuration a model-based search (tpe, gp, cmaes) asked its sampler for.

    The sampler's state is never stored: a driver rebuilds it from these rows and the runs'
    results (service.search). ``first_number`` is NULL for the trial that recorded the runs
    of its configuration and names that trial when the sampler proposed the configuration
    again (no new runs); the partial unique index makes a second set of runs for one
    configuration impossible, whatever two drivers do.
    """

    __tablename__ = "search_trials"
    __table_args__ = (
        Index(
            "uq_search_trials_sweep_id_config_key",
            "sweep_id",
            "config_key",
            unique=True,
            sqlite_where=text("first_number IS NULL"),
            postgresql_where=text("first_number IS NULL"),
        ),
    )

    sweep_id: Mapped[int] = mapped_column(
        ForeignKey("sweeps.id", ondelete="CASCADE"), primary_key=True
    )
    number: Mapped[int] = mapped_column(Integer, primary_key=True)  # 0, 1, ... in ask order
    config_key: Mapped[str] = mapped_column(String(64))
    params: Mapped[dict[str, Any]] = mapped_column(JSON)  # as the sampler proposed them
    first_number: Mapped[int | None] = mapped_column(Integer)
    # Tells done before this ask, and this trial's place in the order of tells (NULL until
    # told): what a CMA-ES driver replays to rebuild its generations exactly.
    asked_after: Mapped[int] = mapped_column(Integer)
    told_seq: Mapped[int | None] = mapped_column(Integer)
    lease_token: Mapped[int] = mapped_column(Integer)  # the driver that recorded it
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, server_default=_now_default())


class SearchLease(Base):
    """Who drives a sweep's search: one row per sweep, taken over when it lapses.

    ``token`` grows by one at each acquisition and every write of a driver checks it, so a
    driver that was taken over (it stalled past the lease) records nothing more.
    """

    __tablename__ = "search_leases"

    sweep_id: Mapped[int] = mapped_column(
        ForeignKey("sweeps.id", ondelete="CASCADE"), primary_key=True
    )
    token: Mapped[int] = mapped_column(Integer)
    holder: Mapped[str] = mapped_column(String(200))
    heartbeat_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)  # database time
    released: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())


class SweepTag(Base):
    """A key -> value label of a sweep (`bplab sweep tag`); one row per key.

    Rows rather than a JSON column so that `sweep list --tag k=v` is one indexed filter
    written the same on SQLite and PostgreSQL.
    """

    __tablename__ = "sweep_tags"
    __table_args__ = (Index(None, "key", "value"),)

    sweep_id: Mapped[int] = mapped_column(
        ForeignKey("sweeps.id", ondelete="CASCADE"), primary_key=True
    )
    key: Mapped[str] = mapped_column(String(100), primary_key=True)
    value: Mapped[str] = mapped_column(String(500))


class PrunedConfig(Base):
    """A configuration of a sweep that early_terminate stopped (unit: config).

    One row per (sweep, configuration): the first decision wins (insert or ignore), and every
    population, on any worker, stops its runs of that configuration when it reads the row.
    """

    __tablename__ = "pruned_configs"

    sweep_id: Mapped[int] = mapped_column(
        ForeignKey("sweeps.id", ondelete="CASCADE"), primary_key=True
    )
    config_key: Mapped[str] = mapped_column(String(64), primary_key=True)
    epoch: Mapped[int] = mapped_column(Integer)
    value: Mapped[float | None] = mapped_column(SafeFloat)  # the configuration's score
    threshold: Mapped[float | None] = mapped_column(SafeFloat)  # what it had to beat
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, server_default=_now_default())
