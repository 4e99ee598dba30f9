"""`bplab plot RUN --run --kind kernels`: a tied net's kernels drawn as the PDP chapter draws
the T-C problem's receptive fields (Hinton diagrams), from the run's stored weights."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from matplotlib.image import imread

from service import plots
from tests.rumelhart1986.test_shared_weights_cli import _bplab, _example


def _tc_run(tmp_path: Path) -> tuple[str, int]:
    url = f"sqlite:///{tmp_path / 'tc.db'}"
    spec = _example(tmp_path, "tc.yaml", epochs=40, log_every=10)
    _bplab(url, "sweep", "run", str(spec), "--workers", "1")
    runs = json.loads(_bplab(url, "runs", "1", "--format", "json"))
    return url, int(runs[0]["id"])


def test_the_kernels_are_drawn_from_the_runs_weights(tmp_path: Path) -> None:
    url, run_id = _tc_run(tmp_path)
    out = tmp_path / "kernels.png"
    _bplab(url, "plot", str(run_id), "--run", "--kind", "kernels", "-o", str(out))
    image = imread(out)
    assert image.shape[0] > 200 and image.shape[1] > 400  # four panels side by side
    grey = np.isclose(image[..., :3], 0.55, atol=0.02).all(axis=-1)
    assert grey.sum() > 1000  # the panels' background, where the squares are drawn
    # the figure the file was drawn from: one square per weight of the 3x3 field and one for
    # the bias, white for excitatory, black for inhibitory, the largest weight the largest
    kernels = json.loads(_bplab(url, "inspect", str(run_id), "--format", "json"))["kernels"]
    fig = plots.kernels_figure(kernels, "t")
    largest = max(
        max(abs(k["bias"]), *(abs(w) for row in k["weights"] for w in row)) for k in kernels
    )
    for ax, kernel in zip(fig.axes, kernels, strict=True):
        values = [w for row in kernel["weights"] for w in row] + [kernel["bias"]]
        assert len(ax.patches) == len(values) == 10
        for patch, w in zip(ax.patches, values, strict=True):
            assert patch.get_width() == np.sqrt(abs(w) / largest) * 0.9
            white = tuple(patch.get_facecolor()[:3]) == (1.0, 1.0, 1.0)
            assert white == (w > 0)


def test_kernels_need_one_tied_run(tmp_path: Path) -> None:
    url, run_id = _tc_run(tmp_path)
    out = str(tmp_path / "k.png")
    without_run = _bplab(url, "plot", "1", "--kind", "kernels", "-o", out, expect=2)
    assert "--kind kernels draws one run's kernels: give --run" in without_run
    missing = _bplab(url, "plot", "999", "--run", "--kind", "kernels", "-o", out, expect=2)
    assert "run 999 does not exist" in missing
    xor = tmp_path / "xor.yaml"
    xor.write_text("dataset: xor\nseeds: 1\nparameters: {epochs: 5}\n")
    _bplab(url, "sweep", "run", str(xor), "--workers", "1")
    runs = json.loads(_bplab(url, "runs", "2", "--format", "json"))
    dense = _bplab(
        url, "plot", str(runs[0]["id"]), "--run", "--kind", "kernels", "-o", out, expect=2
    )
    assert f"run {runs[0]['id']} has no tied kernels" in dense
    assert not Path(out).exists()  # nothing written for a refusal
