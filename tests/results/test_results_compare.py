"""`bplab compare`: pairing by seed, the statistics, the sentence, and the refusals."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from service.compare import compare, compare_metric, parse_filters, select, sentence

pytestmark = pytest.mark.timeout(120)

FAST = "learning_rate=2.0,hidden=3"
SLOW = "learning_rate=0.5,hidden=3"


def _side(runs: list[dict], lr: float, hidden: int) -> dict[int, dict]:
    return {
        r["seed"]: r
        for r in runs
        if r["params"]["learning_rate"] == lr and r["params"]["hidden"] == [hidden]
    }


def test_clearly_better_config_is_significant_in_the_right_direction(finished) -> None:
    bplab, sid = finished
    out = bplab.json("compare", str(sid), "--a", FAST, "--b", SLOW)[0]
    runs = bplab.json("runs", str(sid))
    a, b = _side(runs, 2.0, 3), _side(runs, 0.5, 3)
    assert out["pairs"] == 10 and out["solved"] == {"a": 10, "b": 10, "both": 10, "of": 10}
    epochs = {r["metric"]: r for r in out["metrics"]}["solved_epoch"]
    d = np.array([a[s]["solved_epoch"] - b[s]["solved_epoch"] for s in sorted(a)], dtype=float)
    assert epochs["n_pairs"] == 10
    assert epochs["mean_diff"] == pytest.approx(d.mean())
    assert epochs["a_median"] == pytest.approx(np.median([r["solved_epoch"] for r in a.values()]))
    assert epochs["p_value"] == pytest.approx(stats.wilcoxon(d).pvalue)
    assert epochs["p_value"] < 0.01
    assert epochs["ci_low"] < epochs["mean_diff"] < epochs["ci_high"] < 0  # A is faster
    loss = {r["metric"]: r for r in out["metrics"]}["final_loss"]
    dl = np.array([a[s]["final_loss"] - b[s]["final_loss"] for s in sorted(a)])
    assert loss["mean_diff"] == pytest.approx(dl.mean())
    pct = round((1 - epochs["a_median"] / epochs["b_median"]) * 100)
    line = next(x for x in out["summary"] if "criterion in" in x)
    assert line.startswith(f"A reaches the criterion in {pct}% fewer epochs than B (median")
    assert "Wilcoxon p = 0.002" in line and "n = 10 pairs" in line
    # The table form prints the same sentence; swapping A and B turns it around.
    assert line in bplab("compare", str(sid), "--a", FAST, "--b", SLOW).stdout
    swapped = bplab.json("compare", str(sid), "--a", SLOW, "--b", FAST)[0]
    assert any("more epochs than B" in x for x in swapped["summary"])


def test_unsolved_runs_are_counted_and_left_out_of_epochs(finished) -> None:
    bplab, sid = finished
    runs = bplab.json("runs", str(sid))
    a = _side(runs, 2.0, 2)
    solved = sum(r["solved_epoch"] is not None for r in a.values())
    assert solved < 10  # this sweep's 2-2-1 net at 2.0 misses on some seeds
    out = bplab.json(
        "compare",
        str(sid),
        "--a",
        "learning_rate=2.0,hidden=2",
        "--b",
        "learning_rate=0.5,hidden=2",
    )[0]
    epochs = {r["metric"]: r for r in out["metrics"]}["solved_epoch"]
    assert out["solved"]["a"] == solved and epochs["n_pairs"] == out["solved"]["both"]
    assert epochs["left_out"] == 10 - out["solved"]["both"]
    assert any(f"A {solved} of 10 seeds" in x and "left out" in x for x in out["summary"])


def test_two_sweeps_and_one_metric(finished) -> None:
    bplab, sid = finished
    out = bplab.json(
        "compare",
        str(sid),
        "--a",
        FAST,
        "--b",
        SLOW,
        "--sweep-b",
        str(sid),
        "--metric",
        "best_loss",
    )[0]
    assert [r["metric"] for r in out["metrics"]] == ["best_loss"]
    assert out["b"]["sweep_id"] == sid
    csv_text = bplab("compare", str(sid), "--a", FAST, "--b", SLOW, "--format", "csv").stdout
    assert csv_text.splitlines()[0].startswith("metric,pairs")


@pytest.mark.parametrize(
    ("a", "b", "message"),
    [
        ("learning_rate=2.0", SLOW, "configurations for seed 0 (they differ in hidden)"),
        ("learning_rat=2.0", SLOW, "unknown parameter 'learning_rat'; allowed: activation"),
        ("learning_rate=3.0", SLOW, "matches no run"),
        (FAST, FAST, "same runs"),
        ("learning_rate", SLOW, "is not key=value"),
    ],
)
def test_refusals_are_one_line_exit_2(finished, a, b, message) -> None:
    bplab, sid = finished
    result = bplab("compare", str(sid), "--a", a, "--b", b, expect=2)
    assert message in result.output
    assert "Traceback" not in result.output


def test_filters_read_yaml_scalars_and_hidden_shapes() -> None:
    assert parse_filters("learning_rate=1e-3,hidden=4-4,stop_on_solve=true") == {
        "learning_rate": "1e-3",
        "hidden": "4-4",
        "stop_on_solve": True,
    }
    assert parse_filters("hidden=[4, 4],cost=sse") == {"hidden": [4, 4], "cost": "sse"}
    runs = [
        {"id": 1, "seed": 0, "config": {"hidden": [4, 4], "learning_rate": 0.001}},
        {"id": 2, "seed": 0, "config": {"hidden": [2], "learning_rate": 0.001}},
    ]
    for text in ("hidden=4-4,learning_rate=1e-3", "hidden=[4, 4]", "hidden=4-4"):
        assert [r["id"] for r in select(runs, parse_filters(text), "A", text)] == [1]
    assert [r["id"] for r in select(runs, {"hidden": 2}, "A", "hidden=2")] == [2]


def _run(i: int, seed: int, loss: float, solved: int | None = None) -> dict:
    return {
        "id": i,
        "seed": seed,
        "status": "succeeded",
        "final_loss": loss,
        "solved_epoch": solved,
        "config": {},
    }


def test_identical_pairs_give_p_1_and_a_zero_interval() -> None:
    pairs = [(_run(i, i, 0.5), _run(10 + i, i, 0.5)) for i in range(6)]
    row = compare_metric(pairs, "final_loss")
    assert row["p_value"] == 1.0 and row["ci_low"] == row["ci_high"] == 0.0
    assert sentence(row).startswith("No difference in final loss")


def test_few_pairs_say_they_cannot_be_significant() -> None:
    a = [_run(i, i, 0.1 * (i + 1), 100 + i) for i in range(4)]
    b = [_run(10 + i, i, 0.2 * (i + 1), 300 + i) for i in range(4)]
    out = compare(a, b)
    line = next(x for x in out["summary"] if "criterion in" in x)
    assert "not significant" in line and "4 pairs cannot reach p < 0.05" in line
    assert "fewer epochs" in line
