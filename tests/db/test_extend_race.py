"""`sweep extend` under concurrency (issue 19), on SQLite and PostgreSQL: each (configuration,
seed) cell is recorded once."""

from __future__ import annotations

import threading

from sqlalchemy import text

from service.db.session import session_scope
from service.management import extend_sweep
from tests.reliability.helpers import make_sweep


def test_two_extends_at_once_add_each_cell_once(db_url: str) -> None:
    """The sweep's row lock (PostgreSQL) or the write lock (SQLite) makes the second extend
    plan under the first's runs; the unique (sweep, config, seed) index is the backstop."""
    make_sweep(db_url, 2)  # seeds 0, 1 of one configuration
    errors: list[BaseException] = []

    def extend() -> None:
        try:
            with session_scope(db_url) as session:
                extend_sweep(session, 1, seeds=list(range(6)))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=extend) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    with session_scope(db_url, readonly=True) as session:
        seeds = sorted(session.execute(text("SELECT seed FROM runs")).scalars())
        n_runs = session.execute(text("SELECT n_runs FROM sweeps")).scalar()
    assert seeds == [0, 1, 2, 3, 4, 5] and n_runs == 6
