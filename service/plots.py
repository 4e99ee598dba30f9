"""Figures for `bplab plot`: one line per configuration, or one run's curves; a search's
history (best so far against configurations tried) and each parameter against the metric.

Figures are built with matplotlib's object API (Figure, not pyplot), which renders through
Agg without touching pyplot's global state or needing a display.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib import colormaps
from matplotlib.figure import Figure
from matplotlib.ticker import NullFormatter

from service.curves import Band

BAND_LABELS = {"sd": "band: mean ± 1 sd", "minmax": "band: min to max"}
_STYLES = ("-", "--", ":", "-.")


def _colors(n: int) -> list:
    if n <= 10:
        return [colormaps["tab10"](i) for i in range(n)]
    if n <= 20:
        return [colormaps["tab20"](i) for i in range(n)]
    return [colormaps["viridis"](x) for x in np.linspace(0, 0.95, n)]


def _positive_floor(values: Sequence[np.ndarray]) -> float:
    """The smallest positive value shown, so a band's lower edge stays on a log axis."""
    finite = [v[np.isfinite(v) & (v > 0)] for v in values]
    smallest = [float(v.min()) for v in finite if v.size]
    return min(smallest) if smallest else 1e-12


# What each metric can be: a band (mean ± sd) is clipped to it, so that it never shows an
# accuracy above 1 or a negative loss that no run had.
BOUNDS = {
    "accuracy": (0.0, 1.0),
    "val_accuracy": (0.0, 1.0),
    "loss": (0.0, None),
    "val_loss": (0.0, None),
    "max_error": (0.0, None),
}


def clip_band(metric: str, low: np.ndarray, high: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The band's edges within what the metric can be (see BOUNDS)."""
    lo, hi = BOUNDS.get(metric, (None, None))
    return np.clip(low, lo, hi), np.clip(high, lo, hi)


def sweep_figure(
    groups: Sequence[tuple[str, Band]],
    *,
    metric: str,
    log: bool,
    band: str,
    title: str,
    notes: Sequence[str] = (),
) -> Figure:
    """One line (the mean over runs) and a shaded band per labelled group; ``notes`` are
    printed under the axes (the configurations left out, a sweep still running)."""
    fig = Figure(figsize=(10, 6 + 0.18 * len(notes)), dpi=110, layout="constrained")
    ax = fig.add_subplot()
    colors = _colors(len(groups))
    floor = _positive_floor([g.mean for _, g in groups]) / 10 if log else None
    for i, ((label, g), color) in enumerate(zip(groups, colors, strict=True)):
        style = _STYLES[(i // 10) % len(_STYLES)] if len(groups) > 10 else "-"
        ax.plot(g.epochs, g.mean, color=color, linestyle=style, lw=1.8, label=label)
        low, high = clip_band(metric, g.low, g.high)
        low = np.maximum(low, floor) if floor is not None else low
        ax.fill_between(g.epochs, low, high, color=color, alpha=0.15, lw=0)
    if notes:
        # A figure-level text at the bottom: constrained layout makes room under the axes.
        fig.supxlabel("\n".join(notes), fontsize=8, ha="left", x=0.01)
    if log:
        ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel(f"{metric} (mean over seeds)")
    ax.set_title(
        f"{title}\n{BAND_LABELS[band]}; a run that stopped early holds its last value",
        fontsize=10,
    )
    ax.grid(True, which="major", alpha=0.3)
    # Past a handful of lines a legend inside covers the curves: put it beside the axes.
    outside = len(groups) > 6
    ax.legend(
        fontsize=8,
        loc="upper left" if outside else "best",
        bbox_to_anchor=(1.01, 1.0) if outside else None,
        title="configuration (runs)",
        title_fontsize=8,
    )
    return fig


def run_figure(
    curves: dict[str, np.ndarray],
    *,
    metrics: Sequence[str],
    log: bool,
    title: str,
    solved_epoch: int | None = None,
) -> Figure:
    """One run: a line per metric against epoch, and the epoch it was solved at, if any."""
    fig = Figure(figsize=(9, 5.5), dpi=110, layout="constrained")
    ax = fig.add_subplot()
    epochs = curves["epoch"]
    shown = [m for m in metrics if np.isfinite(curves[m]).any()]
    for metric in shown:
        ax.plot(epochs, curves[metric], lw=1.8, label=metric)
    if solved_epoch is not None:
        ax.axvline(solved_epoch, color="grey", ls=":", lw=1.2, label=f"solved at {solved_epoch}")
    if log:
        ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel(", ".join(shown))
    ax.set_title(title, fontsize=10)
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(fontsize=9)
    return fig


def save(fig: Figure, path: str | Path) -> None:
    """Write the figure; the format follows the file's extension (png, svg, pdf)."""
    fig.savefig(path)


# --- searches: configurations in the order tried, and each parameter against the metric ---


@dataclass
class ParamPanel:
    """One parameter's axis of `bplab plot --kind params`: its value per configuration
    (numbers, or category labels), the metric's, and the order the configurations came in."""

    name: str
    x: list[Any]
    y: list[float]
    order: list[int]
    log_x: bool = False
    categories: list[str] | None = None


def history_figure(
    values: Sequence[float | None],
    best: Sequence[float | None],
    *,
    ylabel: str,
    log: bool,
    title: str,
    notes: Sequence[str] = (),
) -> Figure:
    """Each configuration's value (dots) and the best so far (a step line) against the
    number of configurations tried; None marks what is not plotted (not finished, or left
    out)."""
    fig = Figure(figsize=(9, 5.5 + 0.18 * len(notes)), dpi=110, layout="constrained")
    ax = fig.add_subplot()
    x = np.arange(1, len(values) + 1)
    shown = np.array([v is not None for v in values], dtype=bool)
    ax.scatter(
        x[shown],
        [v for v in values if v is not None],
        s=22,
        color="tab:blue",
        alpha=0.6,
        label="configuration (over its seeds)",
        gid="values",
    )
    has_best = np.array([b is not None for b in best], dtype=bool)
    ax.plot(
        x[has_best],
        [b for b in best if b is not None],
        drawstyle="steps-post",
        color="tab:red",
        lw=2,
        label="best so far",
        gid="best_so_far",
    )
    if log:
        ax.set_yscale("log")
    ax.set_xlabel("configurations tried, in order")
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(fontsize=9)
    if notes:
        fig.supxlabel("\n".join(notes), fontsize=8, ha="left", x=0.01)
    return fig


def params_figure(
    panels: Sequence[ParamPanel],
    *,
    ylabel: str,
    log: bool,
    goal: str,
    title: str,
    notes: Sequence[str] = (),
) -> Figure:
    """One scatter per parameter: the metric against the parameter's value, coloured by the
    order the configuration was tried in (a model-based search moves towards its best), the
    best configuration starred."""
    cols = min(3, len(panels))
    rows = -(-len(panels) // cols)
    fig = Figure(
        figsize=(4.2 * cols + 1, 3.6 * rows + 0.8 + 0.18 * len(notes)),
        dpi=110,
        layout="constrained",
    )
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    last = max((max(p.order) for p in panels if p.order), default=1)
    points = None
    for ax, panel in zip(axes, panels, strict=False):
        x = _positions(panel)
        points = ax.scatter(
            x, panel.y, c=panel.order, cmap="viridis", vmin=1, vmax=last, s=24, gid=panel.name
        )
        if panel.y:
            pick = np.argmin if goal == "minimize" else np.argmax
            i = int(pick(panel.y))
            ax.scatter([x[i]], [panel.y[i]], marker="*", s=160, color="tab:red", zorder=3)
        if panel.categories is not None:
            ax.set_xticks(range(len(panel.categories)), panel.categories)
        elif panel.log_x:
            ax.set_xscale("log")
            # a range under a decade labels every minor tick, and they run into each other
            ax.xaxis.set_minor_formatter(NullFormatter())
        if log:
            ax.set_yscale("log")
        ax.set_xlabel(panel.name + (" (log scale)" if panel.log_x else ""))
        ax.set_ylabel(ylabel)
        ax.grid(True, which="major", alpha=0.3)
    for ax in axes[len(panels) :]:
        ax.set_visible(False)
    if points is not None:
        fig.colorbar(points, ax=list(axes[: len(panels)]), label="configuration tried (order)")
    fig.suptitle(title + "\n(red star: the best configuration)", fontsize=10)
    if notes:
        fig.supxlabel("\n".join(notes), fontsize=8, ha="left", x=0.01)
    return fig


def _positions(panel: ParamPanel) -> list[float]:
    if panel.categories is None:
        return [float(v) for v in panel.x]
    return [float(panel.categories.index(str(v))) for v in panel.x]


# --- a tied net's kernels (`bplab plot --run ID --kind kernels`) ---


def kernels_figure(kernels: list[dict[str, Any]], title: str) -> Figure:
    """Each kernel as the PDP chapter draws its receptive fields (a Hinton diagram): a square
    per weight, as it lies on the retina, its area the weight's size on one scale for all
    kernels, white for excitatory and black for inhibitory, on grey; the bias beside it."""
    from matplotlib.patches import Rectangle

    largest = max(
        max(abs(k["bias"]), *(abs(w) for row in k["weights"] for w in row)) for k in kernels
    )
    columns = min(len(kernels), 4)
    rows = -(-len(kernels) // columns)
    fig = Figure(figsize=(2.4 * columns, 2.6 * rows + 0.4), layout="constrained")
    axes = fig.subplots(rows, columns, squeeze=False)
    for ax in axes.flat[len(kernels) :]:
        ax.set_axis_off()
    for ax, kernel in zip(axes.flat, kernels, strict=False):
        grid = np.asarray(kernel["weights"], dtype=float)
        size = grid.shape[0]
        ax.set_facecolor("0.55")
        # the bias sits in its own column, right of the field, past a gap
        cells = [(r, c, grid[r, c]) for r in range(size) for c in range(size)]
        for r, c, w in [*cells, (0, size + 0.5, kernel["bias"])]:
            side = np.sqrt(abs(w) / largest) * 0.9 if largest > 0 else 0.0
            ax.add_patch(
                Rectangle(
                    (c + 0.5 - side / 2, r + 0.5 - side / 2),
                    side,
                    side,
                    color="white" if w > 0 else "black",
                )
            )
        ax.set_xlim(0, size + 1.5)
        ax.set_ylim(size, 0)  # row 1 at the top, as on the retina
        ax.set_aspect("equal")
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_title(f"kernel {kernel['kernel']} (bias right)", fontsize=9)
    fig.suptitle(title, fontsize=10)
    return fig
