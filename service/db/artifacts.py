"""What a running attempt stores besides its status: epoch rows, checkpoints, final weights.

Every write is fenced by the attempt (service.db.attempts); the caller owns the transaction.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from sqlalchemy import Table, delete, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from service.db.attempts import StaleAttempt, _expire_run, _fenced_update
from service.db.blobs import BlobError, pack_arrays, sha256_hex, unpack_arrays, verify_sha256
from service.db.bulk import insert_epoch_rows_fenced
from service.db.models import Checkpoint, EpochMetric, Run, RunWeights
from service.db.types import db_now

_runs: Table = Run.__table__  # type: ignore[assignment]
log = logging.getLogger("bplab.runner")


class NotFound(LookupError):
    """The requested row does not exist."""


# --- recording -----------------------------------------------------------------------


def dialect_insert(session: Session) -> Any:
    name = session.get_bind().dialect.name
    if name == "sqlite":
        return sqlite.insert
    if name == "postgresql":
        return postgresql.insert
    raise NotImplementedError(f"bplab supports SQLite and PostgreSQL, not {name}")


def record_epochs(
    session: Session, run_id: int, attempt: int, rows: Sequence[Mapping[str, Any]]
) -> None:
    """Write a batch of epoch rows for a running attempt; existing (run, epoch) kept.

    Each row: {"epoch": int, "loss", "accuracy", "val_loss", "val_accuracy", "max_error"}
    (missing metrics are NULL). The fence doubles as the heartbeat. The rows go in as one
    INSERT ... ON CONFLICT DO NOTHING for the whole batch (service.db.bulk), so replaying a
    batch after a crash or a resume from checkpoint never duplicates an epoch.
    """
    # One statement on PostgreSQL (fence and rows together; COPY for large batches): the
    # recording cost per epoch row is what sweeps of thousands of runs pay.
    if not insert_epoch_rows_fenced(session.connection(), run_id, attempt, rows):
        raise StaleAttempt(run_id, attempt)


def epoch_rows(session: Session, run_id: int) -> list[EpochMetric]:
    """A run's recorded epochs in order."""
    q = select(EpochMetric).where(EpochMetric.run_id == run_id).order_by(EpochMetric.epoch)
    return list(session.scalars(q))


def _upsert(session: Session, model: type[Any], values: dict[str, Any]) -> None:
    table: Table = model.__table__
    stmt = dialect_insert(session)(table).values(**values)
    replace = {k: stmt.excluded[k] for k in values if k != "run_id"}
    stmt = stmt.on_conflict_do_update(
        index_elements=["run_id"], set_={**replace, "created_at": db_now()}
    )
    session.connection().execute(stmt)


def save_weights(session: Session, run_id: int, attempt: int, arrays: Sequence[np.ndarray]) -> None:
    """Store a running attempt's final weights (replacing any earlier attempt's)."""
    data, shapes, dtype, digest = pack_arrays(arrays)
    _fenced_update(session, run_id, attempt)
    _upsert(
        session,
        RunWeights,
        {"run_id": run_id, "data": data, "shapes": shapes, "dtype": dtype, "sha256": digest},
    )


def load_weights(session: Session, run_id: int) -> list[np.ndarray]:
    """A run's final weights, sha256-checked and loaded without pickle (else BlobError)."""
    row = session.get(RunWeights, run_id)
    if row is None:
        raise NotFound(f"run {run_id} has no stored weights")
    return unpack_arrays(row.data, row.shapes, row.sha256, what=f"run {run_id} weights")


def save_checkpoint(session: Session, run_id: int, attempt: int, epoch: int, data: bytes) -> None:
    """Replace the run's checkpoint with the training state after epoch (opaque bytes)."""
    _fenced_update(session, run_id, attempt)
    _upsert(
        session,
        Checkpoint,
        {
            "run_id": run_id,
            "attempt": attempt,
            "epoch": int(epoch),
            "data": bytes(data),
            "sha256": sha256_hex(data),
        },
    )


def load_checkpoint(session: Session, run_id: int) -> tuple[int, bytes] | None:
    """(epoch, state bytes) of the run's latest checkpoint, sha256-checked; None if none."""
    row = session.get(Checkpoint, run_id)
    if row is None:
        return None
    verify_sha256(row.data, row.sha256, f"run {run_id} checkpoint")
    return row.epoch, row.data


def claimed_checkpoints(
    session: Session, attempts: Mapping[int, int]
) -> dict[int, tuple[int, bytes]]:
    """{run id: (epoch, state bytes)}: the checkpoints the just-claimed runs resume from
    (``attempts``: {run id: the attempt that claimed it}).

    A checkpoint whose bytes fail their sha256 check is deleted, in the claim's transaction,
    and its run restarts from epoch 0, which ends in the same weights (a run's numbers follow
    from its config and seed); the run's ``error`` and the log say so. Raising instead rolled
    the claim back and left the run queued at the same attempt with no error, so that the
    reconciler published it again and again, for ever (issue 24).
    """
    found: dict[int, tuple[int, bytes]] = {}
    if not attempts:
        return found
    q = select(Checkpoint.run_id, Checkpoint.epoch, Checkpoint.data, Checkpoint.sha256)
    for run_id, epoch, data, digest in session.execute(
        q.where(Checkpoint.run_id.in_([int(r) for r in attempts]))
    ):
        try:
            verify_sha256(data, digest, f"checkpoint at epoch {epoch}")
        except BlobError as exc:
            _discard_checkpoint(session, int(run_id), attempts[int(run_id)], str(exc))
            continue
        found[int(run_id)] = (int(epoch), bytes(data))
    return found


def _discard_checkpoint(session: Session, run_id: int, attempt: int, reason: str) -> None:
    note = f"attempt {attempt}: {reason.split(';')[0]}; restarted from epoch 0"
    log.warning(
        "run %s: %s; the checkpoint is discarded and the run restarts from epoch 0",
        run_id,
        reason.split(";")[0],
    )
    conn = session.connection()
    conn.execute(delete(Checkpoint.__table__).where(Checkpoint.run_id == run_id))
    conn.execute(update(_runs).where(_runs.c.id == run_id).values(error=note))
    _expire_run(session, run_id)


def claimed_runs(
    session: Session, run_ids: Sequence[int]
) -> dict[int, tuple[dict[str, Any], int, int]]:
    """{run id: (config, seed, retry_base)}: what training needs of the runs just claimed."""
    q = select(Run.id, Run.config, Run.seed, Run.retry_base).where(
        Run.id.in_([int(r) for r in run_ids])
    )
    return {int(r.id): (dict(r.config), int(r.seed), int(r.retry_base)) for r in session.execute(q)}


def upsert_by_run(session: Session, model: type[Any], rows: list[dict[str, Any]]) -> None:
    """Insert or replace rows of a table keyed by run_id (checkpoints, weights), in one
    statement (as ``_upsert`` does for one); ``created_at`` set by the database. Not fenced:
    the caller holds the fence of every run in its transaction."""
    rows = [r for r in rows if r]
    if not rows:
        return
    table = model.__table__
    stmt = dialect_insert(session)(table).values(rows)
    replace = {k: stmt.excluded[k] for k in rows[0] if k != "run_id"}
    stmt = stmt.on_conflict_do_update(
        index_elements=["run_id"], set_={**replace, "created_at": db_now()}
    )
    session.connection().execute(stmt)
