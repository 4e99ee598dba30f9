"""0008_pruning keeps every row: up from the revision before it and back down again.

On SQLite the runs CHECK is widened in place: a batch rebuild of runs would delete every
epoch row, weight and checkpoint through ON DELETE CASCADE (foreign keys are on).
"""

from __future__ import annotations

import pytest
from alembic import command
from sqlalchemy import text

from service.db.migrate import alembic_config, upgrade_engine
from service.db.session import dispose_engines, make_engine
from tests.conftest import create_pg_database, drop_pg_database


def _before() -> str:
    """The revision 0008_pruning follows, whichever main has chained it to."""
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(alembic_config())
    return str(script.get_revision("0008_pruning").down_revision)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def url(request: pytest.FixtureRequest, tmp_path):
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'm.db'}"
        return
    url = create_pg_database("bplab_test_prune")
    try:
        yield url
    finally:
        drop_pg_database(url)


def test_up_and_down_keep_rows(url: str) -> None:
    engine = make_engine(url)
    upgrade_engine(engine, _before())
    with engine.begin() as c:
        c.execute(
            text(
                "INSERT INTO sweeps (id, name, dataset, method, spec, swept, n_runs, backend)"
                " VALUES (1, 's', 'xor', 'grid', '{}', '[]', 1, 'local')"
            )
        )
        c.execute(
            text(
                "INSERT INTO runs (id, sweep_id, config, config_key, seed, dataset, learning_rate,"
                " momentum, hidden, cost, activation, output_activation, optimizer, weight_decay,"
                " init, epochs, status) VALUES (1, 1, '{}', 'k', 0, 'xor', 0.1, 0, '2', 'sse',"
                " 'sigmoid', 'sigmoid', 'sgd', 0, '0.3', 10, 'succeeded')"
            )
        )
        c.execute(text("INSERT INTO epoch_metrics (run_id, epoch, loss) VALUES (1, 1, 0.5)"))
    upgrade_engine(engine)
    with engine.begin() as c:
        assert c.execute(text("SELECT COUNT(*) FROM epoch_metrics")).scalar() == 1
        c.execute(text("UPDATE runs SET status = 'pruned', pruned_epoch = 3 WHERE id = 1"))
        assert c.execute(text("SELECT n_pruned FROM config_summary")).scalar() == 1
        assert c.execute(text("SELECT pruned_epoch FROM run_summary")).scalar() == 3
    with pytest.raises(Exception, match="(?i)check"), engine.begin() as c:
        c.execute(text("UPDATE runs SET status = 'bogus' WHERE id = 1"))
    engine.dispose()
    dispose_engines(url)
    command.downgrade(alembic_config(url=url), _before())
    engine = make_engine(url)
    with engine.begin() as c:
        assert c.execute(text("SELECT status FROM runs")).scalar() == "cancelled"
        assert c.execute(text("SELECT COUNT(*) FROM epoch_metrics")).scalar() == 1
    with pytest.raises(Exception, match="(?i)check"), engine.begin() as c:
        c.execute(text("UPDATE runs SET status = 'pruned' WHERE id = 1"))
    upgrade_engine(engine)
    engine.dispose()
