"""Per-run early stopping through the service: patience swept by a spec run with the CLI,
each run equal to its lone engine run (the rows, the stop, the weights), restore_best's
weights equal to a run trained exactly to the best epoch, what results/runs/show/SQL say, a
resume across a checkpoint taken mid-patience, and migration 0009 up and down."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from alembic import command
from sqlalchemy import text

from engine import TrainConfig, TrainState, train
from service.datasets import training_data
from service.db import repository as repo
from service.db.migrate import alembic_config, upgrade_engine
from service.db.session import dispose_engines, make_engine, session_scope
from service.execution import execute_runs
from service.networks import network_from_config
from service.spec import load_spec, parse_spec
from tests.cli.conftest import Bplab
from tests.conftest import create_pg_database, drop_pg_database
from tests.pruning.helpers import record


def _noisy_csv(folder: Path) -> Path:
    """40 patterns of a noisy sine that a 2-12-1 net overfits: val_loss falls, then rises."""
    rng = np.random.default_rng(5)
    X = rng.uniform(-1, 1, (40, 2))
    Y = np.clip(np.sin(3 * X[:, :1]) * 0.4 + 0.5 + rng.normal(0, 0.1, (40, 1)), 0.02, 0.98)
    path = folder / "noisy.csv"
    rows = [f"{a!r},{b!r},{c!r}" for a, b, c in zip(*X.T.tolist(), Y[:, 0].tolist(), strict=True)]
    path.write_text("x1,x2,y\n" + "\n".join(rows) + "\n")
    return path


def _spec(**parameters: Any) -> dict[str, Any]:
    return {
        "name": "patience",
        "dataset": "csv:noisy.csv",
        "seeds": 2,
        "parameters": {
            "epochs": 300,
            "hidden": 12,
            "learning_rate": 0.3,
            "validation_split": 0.3,
            "log_every": 7,
            **parameters,
        },
    }


def _lone(config: dict[str, Any], seed: int, **overrides: Any) -> tuple[Any, Any]:
    """The run trained by the engine alone, as the executor builds it."""
    X, Y, validation = training_data(config, seed)
    rng = np.random.default_rng(seed)
    net = network_from_config(config, X.shape[1], Y.shape[1], rng)
    cfg = TrainConfig.from_dict({**config, **overrides})
    return net, train(net, X, Y, cfg, rng=rng, validation=validation)


def _weights(url: str, run_id: int) -> list[np.ndarray]:
    with session_scope(url, readonly=True) as s:
        return repo.load_weights(s, run_id)


def _same_weights(a: list[np.ndarray], b: list[np.ndarray]) -> bool:
    return all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))


@pytest.fixture
def bplab(tmp_path: Path) -> Bplab:
    _noisy_csv(tmp_path)
    return Bplab(f"sqlite:///{tmp_path / 'bplab.db'}", tmp_path)


def test_patience_swept_with_the_cli_matches_lone_runs_and_is_shown(bplab: Bplab) -> None:
    spec = bplab.write_spec("s.yaml", _spec(patience=[0, 10, 40], restore_best=[False, True]))
    bplab("sweep", "run", str(spec), "--workers", "1")
    runs = bplab.json("runs", "1")
    assert len(runs) == 12 and {r["status"] for r in runs} == {"succeeded"}
    stopped = 0
    for r in runs:
        params, patience = r["params"], r["params"]["patience"]
        net, h = _lone(params, r["seed"])
        # the population member ends exactly as its lone run: the stop, the best epoch, weights
        assert (r["epochs_run"], r["best_epoch"]) == (h.epochs, h.best_epoch), r["id"]
        assert _same_weights(_weights(bplab.url, r["id"]), net.params), r["id"]
        if patience:
            assert h.outcome == "patience" and r["stopped_epoch"] == r["epochs_run"]
            assert r["stopped_epoch"] == r["best_epoch"] + patience
            stopped += 1
        else:
            assert r["stopped_epoch"] is None and r["epochs_run"] == 300
            assert (r["best_epoch"] is None) == (not params["restore_best"])
        if params["restore_best"]:
            # summary figures are the best epoch's: they describe the weights kept
            best = h.metrics(h.best_epoch)
            assert (r["final_loss"], r["val_loss"]) == (best["loss"], best["val_loss"])
            to_best, _ = _lone(params, r["seed"], epochs=h.best_epoch, patience=0)
            assert _same_weights(_weights(bplab.url, r["id"]), to_best.params), r["id"]
        else:
            assert r["final_loss"] == float(h.loss[-1])
    assert stopped == 8

    results = {(row["patience"], row["restore_best"]): row for row in bplab.json("results", "1")}
    assert results[(10, True)]["stopped"] == 2 and results[(0, False)]["stopped"] == 0
    assert results[(0, False)]["best_epoch_median"] is None
    assert (
        results[(40, False)]["stopped_epoch_median"] > results[(10, False)]["stopped_epoch_median"]
    )
    table = bplab("results", "1").stdout
    assert "stopped at" in table and "best epoch" in table and "2 @ " in table
    show = bplab.json("sweep", "show", "1")[0]
    assert show["runs_stopped_by_patience"] == 8
    trained = sum(r["epochs_run"] for r in runs)
    assert show["epochs_trained"] == f"{trained:,} of 3,600 ({trained / 3600:.0%})"
    assert "stopped_epoch" in bplab("runs", "1").stdout
    view = bplab.json("sql", "SELECT n_stopped FROM config_summary ORDER BY n_stopped")
    assert [row["n_stopped"] for row in view] == [0, 0, 2, 2, 2, 2]
    one = bplab.json("sql", "SELECT best_epoch, stopped_epoch FROM run_summary WHERE run_id = 5")
    assert one == [{k: runs[4][k] for k in ("best_epoch", "stopped_epoch")}]


def test_a_sweep_without_patience_shows_nothing_of_it(bplab: Bplab) -> None:
    spec = bplab.write_spec("s.yaml", {**_spec(epochs=20), "seeds": 1})
    bplab("sweep", "run", str(spec), "--workers", "1")
    (run,) = bplab.json("runs", "1")
    assert run["best_epoch"] is None and run["stopped_epoch"] is None
    assert "stopped at" not in bplab("results", "1").stdout
    assert "runs_stopped_by_patience" not in bplab.json("sweep", "show", "1")[0]


def stop_after(n: int):  # noqa: ANN201 - a should_stop callback
    calls = iter(range(1, n + 1))
    return lambda: next(calls, n) >= n


def test_resume_across_a_checkpoint_taken_mid_patience_is_bit_identical(
    db_url: str, tmp_path: Path
) -> None:
    csv = _noisy_csv(tmp_path)
    spec_file = tmp_path / "s.yaml"
    spec_file.write_text(
        yaml.safe_dump({**_spec(patience=[10, 40], restore_best=True), "seeds": [1]})
    )
    assert csv.exists()
    _, clean = record(db_url, load_spec(spec_file))
    execute_runs(clean, url=db_url)
    _, cut = record(db_url, load_spec(spec_file))
    execute_runs(cut, url=db_url, should_stop=stop_after(30))  # both handed back at 30
    with session_scope(db_url, readonly=True) as s:
        statuses = [repo.get_run(s, i).status for i in cut]
        saved = repo.load_checkpoint(s, cut[1])
    # patience 10 stopped at 23 before the cut; patience 40 was waiting (best epoch 13)
    assert statuses == ["succeeded", "queued"]
    state = TrainState.from_bytes(saved[1])
    assert state.epoch == 30 and state.wait == 30 - state.best_epoch > 0
    assert state.best_theta is not None and state.best_metrics is not None
    execute_runs(cut, url=db_url)
    fields = ("status", "epochs_run", "final_loss", "val_loss", "best_epoch", "stopped_epoch")
    with session_scope(db_url, readonly=True) as s:
        for a, b in zip(clean, cut, strict=True):
            ra, rb = repo.get_run(s, a), repo.get_run(s, b)
            assert [getattr(ra, f) for f in fields] == [getattr(rb, f) for f in fields]
            rows_a = [(r.epoch, r.loss, r.val_loss) for r in repo.epoch_rows(s, a)]
            assert rows_a == [(r.epoch, r.loss, r.val_loss) for r in repo.epoch_rows(s, b)]
            assert _same_weights(repo.load_weights(s, a), repo.load_weights(s, b))
    assert rb.stopped_epoch == 53


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def url(request: pytest.FixtureRequest, tmp_path):
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'm.db'}"
        return
    url = create_pg_database("bplab_test_patience")
    try:
        yield url
    finally:
        drop_pg_database(url)


def test_migration_0009_up_and_down_keep_rows(url: str) -> None:
    engine = make_engine(url)
    upgrade_engine(engine, "0008_pruning")
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
        c.execute(text("UPDATE runs SET best_epoch = 4, stopped_epoch = 9 WHERE id = 1"))
        assert c.execute(text("SELECT n_stopped, n_pruned FROM config_summary")).one() == (1, 0)
        row = c.execute(text("SELECT best_epoch, stopped_epoch FROM run_summary")).one()
        assert tuple(row) == (4, 9)
    engine.dispose()
    dispose_engines(url)
    command.downgrade(alembic_config(url=url), "0008_pruning")
    engine = make_engine(url)
    with engine.begin() as c:
        assert c.execute(text("SELECT COUNT(*) FROM epoch_metrics")).scalar() == 1
        assert c.execute(text("SELECT n_pruned FROM config_summary")).scalar() == 0
        with pytest.raises(Exception, match="(?i)stopped_epoch|no such column|does not exist"):
            c.execute(text("SELECT stopped_epoch FROM runs"))
    upgrade_engine(engine)
    engine.dispose()


def test_patience_and_min_delta_sweep_as_lists_and_distributions() -> None:
    grid = parse_spec(
        {
            "dataset": "xor",
            "parameters": {"patience": [None, 0, 5], "min_delta": [0, 1e-3], "restore_best": True},
        }
    )
    assert grid.swept == ["patience", "min_delta"]
    configs = [r.config for r in grid.expand()]
    assert [(c["patience"], c["min_delta"]) for c in configs] == [
        (None, 0.0), (None, 0.001), (0, 0.0), (0, 0.001), (5, 0.0), (5, 0.001),
    ]  # fmt: skip
    assert all(c["restore_best"] is True for c in configs)
    assert TrainConfig.from_dict(configs[0]).patience == 0  # null: off, as 0
    drawn = parse_spec(
        {
            "dataset": "xor",
            "method": "random",
            "samples": 6,
            "parameters": {
                "patience": {"distribution": "int_uniform", "min": 2, "max": 9},
                "min_delta": {"distribution": "log_uniform", "min": 1e-5, "max": 1e-2},
            },
        }
    )
    for run in drawn.expand():
        assert isinstance(run.config["patience"], int) and 2 <= run.config["patience"] <= 9
        assert 1e-5 <= run.config["min_delta"] <= 1e-2
