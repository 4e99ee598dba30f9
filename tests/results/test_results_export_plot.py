"""`bplab export` round trips and `bplab plot` figures."""

from __future__ import annotations

import csv
import json
import math

import numpy as np
import pytest
from matplotlib.image import imread

from service.curves import Curve, aggregate, carried, group_bands, load_curves
from service.db.session import session_scope
from service.plots import sweep_figure

pytestmark = pytest.mark.timeout(120)

SUMMARY = ("final_loss", "best_loss", "accuracy", "solved_epoch", "epochs_run", "wall_time_s")


def test_csv_round_trip_with_curves(finished, out_dir) -> None:
    bplab, sid = finished
    runs = {r["id"]: r for r in bplab.json("runs", str(sid))}
    bplab("export", str(sid), "-o", str(out_dir / "out.csv"), "--curves")
    with (out_dir / "out.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == len(runs) == 40
    for row in rows:
        run = runs[int(row["id"])]
        assert int(row["seed"]) == run["seed"] and row["status"] == run["status"]
        for key in SUMMARY:  # floats written with repr: read back exactly
            want = run[key]
            assert (float(row[key]) if row[key] else None) == want, key
        # Every parameter is a column of its own (lists as JSON).
        assert float(row["learning_rate"]) == run["params"]["learning_rate"]
        assert json.loads(row["hidden"]) == run["params"]["hidden"]
        assert row["stop_on_solve"] == str(run["params"]["stop_on_solve"])
    with (out_dir / "out.curves.csv").open() as f:
        epochs = list(csv.DictReader(f))
    first = min(runs)
    mine = [e for e in epochs if int(e["run_id"]) == first]
    curve = bplab.json("run", "curve", str(first))
    assert [int(e["epoch"]) for e in mine] == [c["epoch"] for c in curve]
    assert [float(e["loss"]) for e in mine] == [c["loss"] for c in curve]
    assert all(e["val_loss"] == "" for e in mine)  # not recorded: empty, not NaN
    assert {int(e["run_id"]) for e in epochs} == set(runs)


def test_json_round_trip_with_curves(finished, out_dir) -> None:
    bplab, sid = finished
    runs = bplab.json("runs", str(sid))
    bplab("export", str(sid), "-o", str(out_dir / "out.json"), "--curves")
    doc = json.loads((out_dir / "out.json").read_text())
    assert doc["sweep"]["id"] == sid and doc["sweep"]["swept"]
    exported = {r["id"]: r for r in doc["runs"]}
    for run in runs:
        got = exported[run["id"]]
        assert got["params"] == run["params"]
        for key in ("seed", "status", *SUMMARY):
            assert got[key] == run[key], key
    curves = {c["run_id"]: c for c in doc["curves"]}
    assert set(curves) == {r["id"] for r in runs}
    one = bplab.json("run", "curve", str(runs[0]["id"]))
    assert curves[runs[0]["id"]]["epoch"] == [c["epoch"] for c in one]
    assert curves[runs[0]["id"]]["loss"] == [c["loss"] for c in one]
    # Without --curves: no curves key; an unknown extension is refused.
    bplab("export", str(sid), "-o", str(out_dir / "plain.json"))
    assert "curves" not in json.loads((out_dir / "plain.json").read_text())
    assert "must end in .csv or .json" in bplab("export", str(sid), "-o", "x.txt", expect=2).output


def test_json_export_writes_nan_and_infinity_as_strings(out_dir) -> None:
    from service.export import write_json

    write_json(out_dir / "n.json", {"id": 1}, [{"params": {}, "final_loss": math.inf}], None)
    doc = json.loads((out_dir / "n.json").read_text())
    assert doc["runs"][0]["final_loss"] == "Infinity" and float("Infinity") == math.inf


def test_plot_sweep_png_and_legend(finished, out_dir) -> None:
    bplab, sid = finished
    png = out_dir / "curves.png"
    result = bplab("plot", str(sid), "-o", str(png))
    assert "4 configuration(s)" in result.output
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    height, width = imread(png).shape[:2]
    assert (width, height) == (1100, 660)
    # The figure the command draws: one legend entry per configuration, naming the values.
    runs = bplab.json("runs", str(sid))
    with session_scope(bplab.url, readonly=True) as s:
        curves = load_curves(s, sweep_id=sid)
    lines = group_bands(
        [{"id": r["id"], "config": r["params"]} for r in runs],
        curves,
        ["learning_rate", "hidden"],
        "loss",
    )
    fig = sweep_figure(lines, metric="loss", log=True, band="sd", title="t")
    legend = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert legend == [
        "learning_rate=0.5, hidden=2 (10)",
        "learning_rate=0.5, hidden=3 (10)",
        "learning_rate=2, hidden=2 (10)",
        "learning_rate=2, hidden=3 (10)",
    ]
    assert fig.axes[0].get_yscale() == "log"
    by_lr = bplab("plot", str(sid), "-o", str(out_dir / "lr.png"), "--by", "learning_rate")
    assert "2 configuration(s)" in by_lr.output


def test_plot_one_run_and_refusals(finished, out_dir) -> None:
    bplab, sid = finished
    run_id = bplab.json("runs", str(sid))[0]["id"]
    bplab("plot", str(run_id), "--run", "-o", str(out_dir / "run.png"), "--linear")
    assert (out_dir / "run.png").stat().st_size > 10_000
    assert "does not exist" in bplab("plot", "9999", "--run", "-o", "r.png", expect=2).output
    no_val = bplab("plot", str(sid), "-o", str(out_dir / "v.png"), "--metric", "val_loss", expect=2)
    assert "no recorded val_loss" in no_val.output
    assert ".png" in bplab("plot", str(sid), "-o", "x.gif", expect=2).output


def test_mean_carries_a_stopped_run_forward() -> None:
    early = Curve(np.array([5, 10]), np.array([4.0, 2.0]))
    late = Curve(np.array([5, 10, 15, 20]), np.array([8.0, 6.0, 4.0, 2.0]))
    assert carried(early.epochs, early.values, np.array([1, 5, 12, 20])).tolist()[1:] == [
        4.0,
        2.0,
        2.0,
    ]
    band = aggregate([early, late], "minmax")
    assert band is not None
    assert band.epochs.tolist() == [5, 10, 15, 20]
    assert band.mean.tolist() == [6.0, 4.0, 3.0, 2.0]  # early holds 2.0 after epoch 10
    assert band.low.tolist() == [4.0, 2.0, 2.0, 2.0] and band.high.tolist() == [8.0, 6.0, 4.0, 2.0]
    sd = aggregate([early, late], "sd")
    assert sd is not None and sd.high[0] == pytest.approx(6.0 + np.std([4.0, 8.0], ddof=1))
    diverged = Curve(np.array([5, 10]), np.array([1.0, np.inf]))
    mixed = aggregate([early, diverged], "sd")
    assert mixed is not None and mixed.mean.tolist() == [2.5, 2.0]  # inf left out
