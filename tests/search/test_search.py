"""Model-based search (issue 16): spec errors, resume reproducibility, two drivers, fencing."""

from __future__ import annotations

import math
import threading
import time
from pathlib import Path

import optuna
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from sqlalchemy import bindparam, text

from service.db import search as db
from service.db.session import session_scope
from service.search.backends import LocalBackend
from service.search.driver import Driver
from service.search.objective import Outcome
from service.search.study import Search, make_sampler, trial_seed
from service.spec import SpecError, parse_spec
from service.sweeps import create_sweep_from_spec
from tests.cli.conftest import Bplab

SPEC = {
    "name": "xor-tpe",
    "dataset": "xor",
    "method": "tpe",
    "run_cap": 6,
    "seeds": 2,
    "sampler_seed": 7,
    "metric": {"name": "final_loss", "goal": "minimize", "aggregate": "mean"},
    "parameters": {
        "learning_rate": {"distribution": "log_uniform", "min": 0.05, "max": 5.0},
        "momentum": {"distribution": "uniform", "min": 0.0, "max": 0.95},
        "hidden": [2, 3],
        "epochs": 150,
    },
}


def _sweep(url: str, **changes: object) -> int:
    spec = parse_spec({**SPEC, **changes})
    with session_scope(url) as s:
        return create_sweep_from_spec(s, spec, backend="local")


def _params(url: str, sweep_id: int) -> list[dict]:
    with session_scope(url, readonly=True) as s:
        return [t["params"] for t in db.list_trials(s, sweep_id)]


@pytest.mark.parametrize(
    ("metric", "field"),
    [
        ({"name": "loss"}, "metric.name"),
        ({"name": "accuracy", "goal": "up"}, "metric.goal"),
        ({"name": "accuracy", "aggregate": "max"}, "metric.aggregate"),
        ({"name": "final_loss", "scale": 2}, "metric.scale"),
        ({"name": "val_loss"}, "metric.name"),  # no validation split: nothing to read
    ],
)
def test_a_bad_metric_is_one_line_exit_2_and_nothing_written(tmp_path: Path, metric, field):
    bplab = Bplab(f"sqlite:///{tmp_path / 'bplab.db'}", tmp_path)
    path = bplab.write_spec("bad.yaml", {**SPEC, "metric": metric})
    result = bplab("sweep", "run", str(path), expect=2)
    assert result.output.count("\n") == 1 and field in result.output, result.output
    assert not (tmp_path / "bplab.db").exists()


def test_spec_keys_of_a_search_are_checked():
    with pytest.raises(SpecError, match="run_cap: missing"):
        parse_spec({k: v for k, v in SPEC.items() if k != "run_cap"})
    with pytest.raises(SpecError, match="run_cap: only used with method"):
        parse_spec({"dataset": "xor", "run_cap": 3})
    with pytest.raises(SpecError, match="samples"):
        parse_spec({**SPEC, "samples": 3})
    spec = parse_spec({**SPEC, "metric": "accuracy"})
    assert spec.spec_dict["metric"] == {"name": "accuracy", "goal": "maximize", "aggregate": "mean"}
    assert spec.count_runs() == 12 and spec.expand() == []


def test_gp_without_torch_says_so(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "torch" else real(name, *a)
    )
    with pytest.raises(SpecError, match="gp needs PyTorch"):
        parse_spec({**SPEC, "method": "gp"})


def test_resumed_search_asks_what_an_uninterrupted_one_asks(tmp_path: Path):
    url = f"sqlite:///{tmp_path / 'bplab.db'}"
    straight = _sweep(url)
    report = Driver(straight, LocalBackend(1, url), url=url).run()
    assert report.finished and report.trials == 6
    broken = _sweep(url)
    first = Driver(broken, LocalBackend(1, url), url=url, stop_when=lambda told: told >= 3)
    assert first.run().interrupted
    assert len(_params(url, broken)) in (3, 4)
    again = Driver(broken, LocalBackend(1, url), url=url).run()
    assert again.finished
    assert _params(url, broken) == _params(url, straight)


class SqlBackend:
    """Trains nothing: a run 'finishes' at once with a loss that depends on its config."""

    def __init__(self, url: str, slots: int = 2, stall: threading.Event | None = None) -> None:
        self.url, self.slots, self.stall = url, slots, stall
        self.stalling = threading.Event()  # set when the stall begins
        self.submitted: list[int] = []

    def submit(self, run_ids: list[int]) -> None:
        self.submitted.extend(run_ids)
        with session_scope(self.url) as s:
            s.execute(
                text(
                    "UPDATE runs SET status = 'succeeded', epochs_run = epochs,"
                    " final_loss = (learning_rate - 1.0) * (learning_rate - 1.0) + momentum"
                    " WHERE id IN :ids AND status = 'queued'"
                ).bindparams(bindparam("ids", expanding=True)),
                {"ids": run_ids},
            )

    def wait(self, timeout: float) -> None:
        if self.stall is not None and self.stall.is_set():
            self.stall.clear()
            self.stalling.set()
            time.sleep(2.5)  # past the lease: the other driver takes over meanwhile
        time.sleep(min(timeout, 0.02))

    def close(self, *, interrupted: bool) -> None:
        pass


def test_two_drivers_at_once_ask_no_configuration_twice(db_url: str):
    sweep_id = _sweep(db_url, run_cap=14)
    stall = threading.Event()
    backend_a = SqlBackend(db_url, stall=stall)
    a = Driver(sweep_id, backend_a, url=db_url, lease_s=1.0, poll_s=0.05)
    b = Driver(sweep_id, SqlBackend(db_url), url=db_url, lease_s=1.0, poll_s=0.05)
    reports = {}

    def go(name: str, driver: Driver) -> None:
        reports[name] = driver.run()

    threads = [threading.Thread(target=go, args=("a", a))]
    stall.set()  # a stalls at its first wait, b (waiting for the lease) takes over
    threads[0].start()
    # b starts once a is stalled, not after a fixed sleep: a fast machine finished the whole
    # search before a sleep of 0.3 s was over, and nothing was taken over
    assert backend_a.stalling.wait(30)
    threads.append(threading.Thread(target=go, args=("b", b)))
    threads[1].start()
    for t in threads:
        t.join(60)
    assert reports["b"].finished, reports
    assert reports["a"].lost_lease, reports
    with session_scope(db_url, readonly=True) as s:
        trials = db.list_trials(s, sweep_id)
        cells = s.execute(
            text(
                "SELECT config_key, seed, COUNT(*) FROM runs WHERE sweep_id = :s"
                " GROUP BY config_key, seed"
            ),
            {"s": sweep_id},
        ).all()
    assert [t["number"] for t in trials] == list(range(14))
    assert all(n == 1 for _, _, n in cells)
    firsts = [t["config_key"] for t in trials if t["first_number"] is None]
    assert len(firsts) == len(set(firsts)) == len({k for k, _, _ in cells})
    assert all(t["told_seq"] is not None for t in trials)


def test_a_driver_taken_over_records_nothing(db_url: str):
    sweep_id = _sweep(db_url)
    with session_scope(db_url) as s:
        old = db.acquire_lease(s, sweep_id, "a", lease_s=60)
    with session_scope(db_url) as s:
        assert db.acquire_lease(s, sweep_id, "b", lease_s=60) is None  # held and alive
    with session_scope(db_url) as s:
        new = db.acquire_lease(s, sweep_id, "b", lease_s=0)  # lapsed: taken over
    assert (old, new) == (1, 2)
    config = parse_spec({"dataset": "xor"}).configs()[0]
    with pytest.raises(db.LeaseLost), session_scope(db_url) as s:
        db.record_trial(
            s,
            sweep_id=sweep_id,
            token=old,
            number=0,
            params={},
            config=config,
            seeds=[0],
            asked_after=0,
        )
    with session_scope(db_url, readonly=True) as s:
        assert db.list_trials(s, sweep_id) == []


def test_results_list_the_trials_in_order_with_the_best_so_far(tmp_path: Path):
    bplab = Bplab(f"sqlite:///{tmp_path / 'bplab.db'}", tmp_path)
    path = bplab.write_spec("s.yaml", {**SPEC, "run_cap": 4})
    bplab("sweep", "run", str(path), "--workers", "2")
    rows = bplab.json("results", "1")
    assert [r["trial"] for r in rows] == [0, 1, 2, 3]
    best = None
    for r in rows:
        best = r["value"] if best is None else min(best, r["value"])
        assert r["best_so_far"] == best
    plan = bplab("sweep", "plan", str(path)).output
    assert "tpe search" in plan and "4 configurations x 2 seeds" in plan


@pytest.mark.parametrize("method", ["tpe", "random"])
def test_a_reseeded_sampler_asks_what_a_fresh_sampler_asks(method: str):
    """Search.ask reuses a TPE or random sampler, reseeded per trial: the configurations
    must be those of a fresh sampler per ask (what resume's reproducibility rests on)."""
    space = {
        "learning_rate": FloatDistribution(0.01, 3.0, log=True),
        "hidden": IntDistribution(1, 8),
        "cost": CategoricalDistribution(["mse", "cross_entropy"]),
    }
    search = Search(method, 11, space, "minimize")
    fresh = optuna.create_study(direction="minimize")

    def value(params: dict) -> float:
        return (math.log(params["learning_rate"]) + 1) ** 2 + params["hidden"] / 10

    running: list[int] = []
    for number in range(40):
        fresh.sampler = make_sampler(method, trial_seed(11, number))
        expected = fresh.ask(space).params
        assert search.ask(number) == expected, number
        running.append(number)
        if number % 3 != 1:  # some trials stay running across later asks, as in a sweep
            for n in running:
                params = fresh.trials[n].params
                fresh.tell(n, value(params))
                search.tell(n, Outcome("complete", value(params)))
            running = []
