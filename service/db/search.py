"""The SQL of model-based search: the driver's lease, the trials it records, their results.

Plain functions taking a Session, like service.db.repository (the caller commits). Every
write of a driver first renews its lease row on its token (``_fence``): a driver that was
taken over (its token is no longer the row's) gets LeaseLost and writes nothing, as a stale
run attempt gets StaleAttempt. On PostgreSQL the renewal locks the lease row until commit,
so a takeover waits for the write and then sees a fresh heartbeat; on SQLite every write
transaction holds the database's write lock.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select, Table, and_, bindparam, insert, or_, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from service.db.models import SUMMARY_METRICS, EpochMetric, Run, SearchLease, SearchTrial, Sweep
from service.db.repository import config_key, derived_columns
from service.db.types import db_ago, db_now

_leases: Table = SearchLease.__table__  # type: ignore[assignment]
_trials: Table = SearchTrial.__table__  # type: ignore[assignment]
_runs: Table = Run.__table__  # type: ignore[assignment]
_sweeps: Table = Sweep.__table__  # type: ignore[assignment]

# The run columns a search objective may read (service.search.objective).
OUTCOME_FIELDS = ("status", "seed", "epochs", "epochs_run", *SUMMARY_METRICS)


class LeaseLost(Exception):
    """This driver's lease was taken over (or released): it may record nothing more."""

    def __init__(self, sweep_id: int, token: int) -> None:
        super().__init__(f"sweep {sweep_id}: search lease {token} was taken over")
        self.sweep_id = sweep_id
        self.token = token


# --- the lease -------------------------------------------------------------------------


def acquire_lease(session: Session, sweep_id: int, holder: str, lease_s: float) -> int | None:
    """Take the sweep's search lease if nobody holds it (none yet, released or lapsed for
    ``lease_s`` seconds of database time); the new token, or None when it is held."""
    row = session.execute(
        select(_leases.c.token).where(_leases.c.sweep_id == sweep_id)
    ).one_or_none()
    conn = session.connection()
    if row is None:
        try:
            with session.begin_nested():  # two first drivers: the primary key picks one
                conn.execute(
                    insert(_leases).values(
                        sweep_id=sweep_id, token=1, holder=holder, heartbeat_at=db_now()
                    )
                )
        except IntegrityError:
            return None
        return 1
    token = int(row[0])
    free = or_(
        _leases.c.released.is_(True),
        _leases.c.heartbeat_at.is_(None),
        _leases.c.heartbeat_at <= db_ago(lease_s),
    )
    # compare-and-set on the token: of two drivers taking a lapsed lease, one wins
    taken = conn.execute(
        update(_leases)
        .where(_leases.c.sweep_id == sweep_id, _leases.c.token == token, free)
        .values(token=token + 1, holder=holder, heartbeat_at=db_now(), released=False)
    ).rowcount
    return token + 1 if taken == 1 else None


# Statements a driver runs at every look, built once: building and keying a statement
# costs more than SQLite's work on these few rows (benchmarks/search.py, driver overhead).
_RENEW = (
    update(_leases)
    .where(
        _leases.c.sweep_id == bindparam("b_sweep"),
        _leases.c.token == bindparam("b_token"),
        _leases.c.released.is_(False),
    )
    .values(heartbeat_at=db_now())
)
_MARK_TOLD = (
    update(_trials)
    .where(_trials.c.sweep_id == bindparam("b_sweep"), _trials.c.number == bindparam("b_number"))
    .values(told_seq=bindparam("b_seq"))
)
_INSERT_TRIAL = insert(_trials)
_INSERT_RUNS = insert(_runs).returning(_runs.c.id)
_COUNT_RUNS = (
    update(_sweeps)
    .where(_sweeps.c.id == bindparam("b_sweep"))
    .values(n_runs=_sweeps.c.n_runs + bindparam("b_added"))
)


# A driver's look runs on a bare Connection (session.connection_scope); other callers pass
# a Session. Either way the statements run in the caller's transaction.
Db = Session | Connection


def _conn(db: Db) -> Connection:
    return db.connection() if isinstance(db, Session) else db


def _fence(session: Db, sweep_id: int, token: int) -> None:
    """Renew the lease, or raise LeaseLost when ``token`` no longer holds it."""
    renewed = _conn(session).execute(_RENEW, {"b_sweep": sweep_id, "b_token": token})
    if renewed.rowcount != 1:
        raise LeaseLost(sweep_id, token)


def renew_lease(session: Session, sweep_id: int, token: int) -> None:
    """The driver's heartbeat; LeaseLost when it was taken over."""
    _fence(session, sweep_id, token)


def release_lease(session: Session, sweep_id: int, token: int) -> bool:
    """Give the lease up so that the next driver need not wait for it to lapse."""
    return (
        session.connection()
        .execute(
            update(_leases)
            .where(_leases.c.sweep_id == sweep_id, _leases.c.token == token)
            .values(released=True, heartbeat_at=None)
        )
        .rowcount
        == 1
    )


def lease_info(session: Session, sweep_id: int, lease_s: float) -> dict[str, Any] | None:
    """The lease row with ``live`` (held and renewed within ``lease_s``); None if never taken."""
    live = and_(_leases.c.released.is_(False), _leases.c.heartbeat_at > db_ago(lease_s))
    row = session.execute(
        select(_leases.c.token, _leases.c.holder, _leases.c.heartbeat_at, live.label("live")).where(
            _leases.c.sweep_id == sweep_id
        )
    ).one_or_none()
    if row is None:
        return None
    return {"token": row[0], "holder": row[1], "heartbeat_at": row[2], "live": bool(row[3])}


# --- trials ----------------------------------------------------------------------------


@dataclass(frozen=True)
class NewTrial:
    """A trial a driver asked for, to be recorded. ``first_number``: the earlier trial of the
    same configuration as the driver knows it (None: a configuration new to the sweep)."""

    number: int
    params: Mapping[str, Any]
    config: Mapping[str, Any]
    first_number: int | None
    asked_after: int


def record_step(
    session: Db,
    *,
    sweep_id: int,
    token: int,
    told: Sequence[tuple[int, int]],
    asked: Sequence[NewTrial],
    seeds: Sequence[int],
) -> list[list[int]]:
    """One look of a driver, in the caller's transaction, fenced once: the ``told`` trials
    as (number, told_seq), then the ``asked`` trials and, for each configuration new to the
    sweep, its runs (one per seed, queued); the new run ids, per new configuration.

    LeaseLost if the driver was taken over. A trial number recorded already, or a second
    set of runs for one configuration (the partial unique index), is an IntegrityError:
    the transaction must then be rolled back.
    """
    _fence(session, sweep_id, token)
    if told:
        _conn(session).execute(
            _MARK_TOLD,
            [{"b_sweep": sweep_id, "b_number": number, "b_seq": seq} for number, seq in told],
        )
    new_runs = [_insert_trial(session, sweep_id, token, trial, seeds) for trial in asked]
    return [ids for ids in new_runs if ids]


def _insert_trial(
    session: Db, sweep_id: int, token: int, trial: NewTrial, seeds: Sequence[int]
) -> list[int]:
    conn = _conn(session)
    key = config_key(trial.config)
    conn.execute(
        _INSERT_TRIAL,
        {
            "sweep_id": sweep_id,
            "number": trial.number,
            "config_key": key,
            "params": dict(trial.params),
            "first_number": trial.first_number,
            "asked_after": trial.asked_after,
            "lease_token": token,
        },
    )
    if trial.first_number is not None:
        return []
    columns = {"config_key": key, **derived_columns(trial.config)}
    rows = [
        {
            "sweep_id": sweep_id,
            "config": dict(trial.config),
            "seed": int(seed),
            "status": "queued",
            "attempt": 0,
            **columns,
        }
        for seed in seeds
    ]
    ids = list(conn.execute(_INSERT_RUNS, rows).scalars())
    conn.execute(_COUNT_RUNS, {"b_sweep": sweep_id, "b_added": len(rows)})
    return sorted(int(i) for i in ids)


def record_trial(
    session: Session,
    *,
    sweep_id: int,
    token: int,
    number: int,
    params: Mapping[str, Any],
    config: Mapping[str, Any],
    seeds: Sequence[int],
    asked_after: int,
) -> tuple[int | None, list[int]]:
    """Record trial ``number`` alone (fenced), looking up whether its configuration was
    tried before; (first_number, run ids), as one ``record_step`` would."""
    _fence(session, sweep_id, token)
    first = session.execute(
        select(_trials.c.number).where(
            _trials.c.sweep_id == sweep_id,
            _trials.c.config_key == config_key(config),
            _trials.c.first_number.is_(None),
        )
    ).scalar_one_or_none()
    trial = NewTrial(number, params, config, first, asked_after)
    return first, _insert_trial(session, sweep_id, token, trial, seeds)


def mark_told(session: Session, *, sweep_id: int, token: int, number: int, seq: int) -> None:
    """Record that trial ``number`` was the ``seq``-th told to the sampler (fenced)."""
    record_step(session, sweep_id=sweep_id, token=token, told=[(number, seq)], asked=[], seeds=[])


def list_trials(session: Session, sweep_id: int) -> list[dict[str, Any]]:
    """The sweep's trials in ask order, as dicts of the search_trials columns."""
    q = select(_trials).where(_trials.c.sweep_id == sweep_id).order_by(_trials.c.number)
    return [dict(row._mapping) for row in session.execute(q)]


def config_runs(
    session: Db,
    sweep_id: int,
    *,
    val_accuracy: bool = False,
    keys: Sequence[str] | None = None,
) -> dict[str, list[dict[str, Any]]]:
    """The runs of the sweep (of the configurations ``keys`` only, when given) grouped by
    config_key (run id order): id, config and the OUTCOME_FIELDS; with ``val_accuracy``,
    that of each run's last recorded epoch."""
    params: dict[str, Any] = {"b_sweep": sweep_id}
    if keys is not None:
        params["b_keys"] = list(keys)
    out: dict[str, list[dict[str, Any]]] = {}
    for row in session.execute(_config_runs_query(val_accuracy, keys is not None), params):
        record = dict(row._mapping)
        out.setdefault(record["config_key"], []).append(record)
    return out


@functools.cache
def _config_runs_query(val_accuracy: bool, by_keys: bool) -> Select[Any]:
    """Built once per variant: a driver runs it at every look (see _RENEW)."""
    cols: list[Any] = [_runs.c.id, _runs.c.config_key, _runs.c.config]
    cols += [_runs.c[f] for f in OUTCOME_FIELDS]
    if val_accuracy:
        last = (
            select(EpochMetric.val_accuracy)
            .where(EpochMetric.run_id == _runs.c.id)
            .order_by(EpochMetric.epoch.desc())
            .limit(1)
            .scalar_subquery()
        )
        cols.append(last.label("val_accuracy"))
    q = select(*cols).where(_runs.c.sweep_id == bindparam("b_sweep")).order_by(_runs.c.id)
    if by_keys:
        q = q.where(_runs.c.config_key.in_(bindparam("b_keys", expanding=True)))
    return q


def queued_run_ids(session: Session, sweep_id: int, config_key_: str) -> list[int]:
    """The queued runs of one configuration of the sweep, in id order."""
    q = (
        select(_runs.c.id)
        .where(
            _runs.c.sweep_id == sweep_id,
            _runs.c.config_key == config_key_,
            _runs.c.status == "queued",
        )
        .order_by(_runs.c.id)
    )
    return [int(i) for i in session.execute(q).scalars()]
