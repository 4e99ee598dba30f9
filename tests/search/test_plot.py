"""Issue 16 item 6: `bplab plot --kind history | params` of a search and of a random sweep,
through the CLI; the figures' data read back and compared with `bplab results`."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from matplotlib.collections import PathCollection
from matplotlib.image import imread

from service.search.plotting import search_figure
from tests.cli.conftest import Bplab
from tests.search.test_search import SPEC

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def bp(tmp_path: Path) -> Bplab:
    return Bplab(f"sqlite:///{tmp_path / 'bplab.db'}", tmp_path)


def _run(bp: Bplab, spec: dict) -> int:
    path = bp.write_spec(f"{spec['name']}.yaml", spec)
    out = bp("sweep", "run", str(path), "--workers", "2")
    return int(out.stderr.split("sweep ", 1)[1].split(":", 1)[0])


def _assert_png(path: Path) -> None:
    assert path.read_bytes()[:8] == PNG_MAGIC
    pixels = imread(path)
    assert pixels.shape[0] > 400 and pixels.shape[1] > 600
    assert float(np.std(pixels)) > 0.05  # something is drawn, not a blank canvas


def _scatter(ax, gid: str) -> np.ndarray:
    (points,) = [c for c in ax.collections if isinstance(c, PathCollection) and c.get_gid() == gid]
    return np.asarray(points.get_offsets())


def test_history_and_params_of_a_search(bp: Bplab, tmp_path: Path) -> None:
    spec = {
        **SPEC,
        "name": "tpe-plot",
        "run_cap": 8,
        "parameters": {
            **SPEC["parameters"],
            "hidden": {"distribution": "int_uniform", "min": 1, "max": 3},
        },
    }
    sweep = _run(bp, spec)
    rows = bp.json("results", str(sweep))
    assert [r["trial"] for r in rows] == list(range(8))

    out = bp("plot", str(sweep), "-o", str(tmp_path / "history.png"), "--kind", "history")
    assert "wrote" in out.stderr and "8 configuration(s)" in out.stderr
    _assert_png(tmp_path / "history.png")
    out = bp("plot", str(sweep), "-o", str(tmp_path / "params.png"), "--kind", "params")
    assert "8 configuration(s)" in out.stderr
    _assert_png(tmp_path / "params.png")

    # the history: a dot per configuration in the order tried, the best so far as a step line
    fig, shown = search_figure(bp.url, sweep, "history")
    ax = fig.axes[0]
    (best,) = [line for line in ax.get_lines() if line.get_gid() == "best_so_far"]
    assert list(best.get_xdata()) == list(range(1, 9))
    assert list(best.get_ydata()) == [r["best_so_far"] for r in rows]
    assert np.all(np.diff(best.get_ydata()) <= 0)  # final_loss is minimised
    dots = _scatter(ax, "values")
    assert dots[:, 0].tolist() == list(range(1, 9))
    assert dots[:, 1].tolist() == [r["value"] for r in rows]
    assert ax.get_yscale() == "log" and ax.get_xlabel() == "configurations tried, in order"

    # params: one panel per swept parameter, x the trial's value, y the trial's metric
    fig, shown = search_figure(bp.url, sweep, "params")
    panels = {c.get_gid(): ax for ax in fig.axes for c in ax.collections if c.get_gid()}
    assert {"learning_rate", "momentum", "hidden"} <= set(panels)
    for name in ("learning_rate", "momentum", "hidden"):
        xy = _scatter(panels[name], name)
        assert xy[:, 0].tolist() == pytest.approx([float(r[name]) for r in rows], rel=1e-12)
        assert xy[:, 1].tolist() == [r["value"] for r in rows]
    assert panels["learning_rate"].get_xscale() == "log"  # log_uniform
    assert panels["momentum"].get_xscale() == "linear"  # uniform
    assert panels["hidden"].get_xscale() == "linear"  # int_uniform


def test_params_of_a_random_sweep_and_a_grid_refused(bp: Bplab, tmp_path: Path) -> None:
    random = {
        "name": "random-plot",
        "dataset": "xor",
        "method": "random",
        "samples": 5,
        "seeds": 2,
        "parameters": {
            "learning_rate": {"distribution": "log_uniform", "min": 0.1, "max": 4.0},
            "hidden": [2, 3],
            "epochs": 150,
        },
    }
    sweep = _run(bp, random)
    out = bp("plot", str(sweep), "-o", str(tmp_path / "r.png"), "--kind", "params")
    assert "5 configuration(s)" in out.stderr
    _assert_png(tmp_path / "r.png")
    fig, _ = search_figure(bp.url, sweep, "params")
    (lr,) = [ax for ax in fig.axes if ax.get_xlabel().startswith("learning_rate")]
    assert lr.get_xscale() == "log"
    runs = bp.json("runs", str(sweep))
    rates = sorted({r["params"]["learning_rate"] for r in runs})
    assert sorted(_scatter(lr, "learning_rate")[:, 0].tolist()) == pytest.approx(rates)
    # a random sweep has a history too, in the order of its configurations' first runs
    bp("plot", str(sweep), "-o", str(tmp_path / "rh.png"), "--kind", "history")
    _assert_png(tmp_path / "rh.png")

    grid = {
        "name": "grid",
        "dataset": "xor",
        "seeds": 1,
        "parameters": {"learning_rate": [0.5, 1.0], "epochs": 50},
    }
    grid_id = _run(bp, grid)
    refused = bp("plot", str(grid_id), "-o", str(tmp_path / "g.png"), "--kind", "params", expect=2)
    assert refused.output.count("\n") == 1, refused.output
    assert "grid sweep" in refused.output and "--kind params" in refused.output
    assert not (tmp_path / "g.png").exists()
    bp("plot", str(grid_id), "-o", str(tmp_path / "gh.png"), "--kind", "history")
    _assert_png(tmp_path / "gh.png")


def test_bad_uses_are_one_line_exit_2(bp: Bplab, tmp_path: Path) -> None:
    sweep = _run(bp, {**SPEC, "name": "one", "run_cap": 2})
    missing = bp("plot", "99", "-o", str(tmp_path / "m.png"), "--kind", "history", expect=2)
    assert missing.output.count("\n") == 1 and "sweep 99 does not exist" in missing.output
    bad = bp("plot", str(sweep), "-o", str(tmp_path / "x.png"), "--kind", "best", expect=2)
    assert "--kind" in bad.output
    run = bp(
        "plot", str(sweep), "-o", str(tmp_path / "r.png"), "--kind", "history", "--run", expect=2
    )
    assert run.output.count("\n") == 1 and "--run is for curves" in run.output
    assert not any((tmp_path / f).exists() for f in ("m.png", "x.png", "r.png"))
