"""Issue 18 item 8: diverged configurations left out and listed, bands clipped to what the
metric can be, legend values to 4 significant digits, a partly finished sweep marked."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from matplotlib.collections import PolyCollection
from sqlalchemy import create_engine, text

from service import plots
from service.curves import Band
from tests.cli.conftest import Bplab
from tests.results.conftest import run_sweep

# identity outputs at learning rate 20 run to infinity within a few epochs; 0.123456 does not
SPEC = {
    "name": "some-diverge",
    "dataset": "xor",
    "seeds": 2,
    "parameters": {
        "learning_rate": [0.123456, 20.0],
        "output_activation": "identity",
        "epochs": 200,
        "stop_within": None,
    },
}


@pytest.fixture
def bp(db_url: str, tmp_path: Path) -> Bplab:
    return Bplab(db_url, tmp_path)


def test_diverged_left_out_and_listed_partial_marked(bp: Bplab, tmp_path: Path) -> None:
    sweep = run_sweep(bp, SPEC)
    statuses = {r["params"]["learning_rate"]: r["status"] for r in bp.json("runs", str(sweep))}  # type: ignore[index]
    assert statuses[20.0] == "diverged" and statuses[0.123456] == "succeeded"
    out = bp("plot", str(sweep), "-o", str(tmp_path / "a.svg"))
    assert "1 configuration(s)" in out.stderr
    assert "left out: learning_rate=20 (2 of 2 runs diverged)" in out.stderr
    svg = (tmp_path / "a.svg").read_text()
    assert "learning_rate=0.1235 (2)" in svg  # legend: 4 significant digits
    assert "left out: learning_rate=20" in svg  # listed under the plot
    both = bp("plot", str(sweep), "-o", str(tmp_path / "b.svg"), "--diverged")
    assert "2 configuration(s)" in both.stderr and "plotted: learning_rate=20" in both.stderr
    # one run back in the queue: the sweep is not finished, and the plot says so
    with create_engine(bp.url).begin() as conn:
        conn.execute(text("UPDATE runs SET status = 'queued' WHERE id = 1"))
    partial = bp("plot", str(sweep), "-o", str(tmp_path / "c.svg"))
    assert "partial: 1 of 4 runs still queued or running" in partial.stderr
    assert "partial: 3 of 4 runs finished" in (tmp_path / "c.svg").read_text()


def test_bands_clipped_to_what_the_metric_can_be() -> None:
    epochs = np.arange(1, 4)
    wide = Band(epochs, np.array([0.9, 0.5, 0.1]), np.full(3, -0.5), np.full(3, 1.5), 3)
    for metric, lo, hi in (("accuracy", 0.0, 1.0), ("loss", 0.0, 1.5)):
        fig = plots.sweep_figure(
            [("a", wide)], metric=metric, log=False, band="sd", title="t", notes=["n"]
        )
        (poly,) = [c for c in fig.axes[0].collections if isinstance(c, PolyCollection)]
        ys = np.concatenate([p.vertices[:, 1] for p in poly.get_paths()])
        assert ys.min() >= lo and ys.max() <= hi, (metric, ys.min(), ys.max())
