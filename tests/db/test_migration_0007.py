"""Migration 0007_management on a database that has results (issue 19): checkpoints that
finished runs left behind are deleted, an unfinished run's is kept, and the rest is kept."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import text

from service.db import migrate
from service.db.repository import config_key, derived_columns
from service.db.session import make_engine
from tests.db.dbhelpers import full_config


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def empty_url(request: pytest.FixtureRequest, tmp_path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'old.db'}"
    return request.getfixturevalue("empty_pg_url")


def test_upgrade_drops_the_checkpoints_of_finished_runs(empty_url: str) -> None:
    engine = make_engine(empty_url)
    try:
        migrate.upgrade_engine(engine, "0006_search")
        config = full_config()
        columns = {"config_key": config_key(config), **derived_columns(config)}
        names = ", ".join(columns)
        values = ", ".join(f":{c}" for c in columns)
        with engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO sweeps (name, dataset, method, spec, swept, n_runs, backend) "
                    "VALUES ('old', 'xor', 'grid', '{}', '[]', 2, 'local')"
                )
            )
            for seed, status in ((0, "succeeded"), (1, "queued")):
                conn.execute(
                    text(
                        f"INSERT INTO runs (sweep_id, config, seed, status, attempt, {names}) "
                        f"VALUES (1, :config, :seed, :status, 1, {values})"
                    ),
                    {"config": json.dumps(config), "seed": seed, "status": status, **columns},
                )
                conn.execute(
                    text(
                        "INSERT INTO checkpoints (run_id, attempt, epoch, data, sha256) "
                        "VALUES (:r, 1, 5, :d, 'x')"
                    ),
                    {"r": seed + 1, "d": b"state"},
                )
        migrate.upgrade_engine(engine)
        with engine.connect() as conn:
            kept = conn.execute(text("SELECT run_id FROM checkpoints")).scalars().all()
            sweep = conn.execute(text("SELECT name, note, data_sha256 FROM sweeps")).one()
        assert kept == [2]  # the queued run may still resume from it
        assert tuple(sweep) == ("old", None, None)  # recorded before hashes: never refused
    finally:
        engine.dispose()
