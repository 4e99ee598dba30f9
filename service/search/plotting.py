"""The figures `bplab plot --kind history | params` draws of a sweep, from its recorded runs.

history: each configuration's value (its metric over its seeds) and the best so far, against
the configurations tried in order (a search's trials; a grid or random sweep's configurations
in the order of their first runs). params: each swept parameter against the metric, for
random and model-based sweeps, whose parameters are sampled; a log_uniform parameter on a
log axis. Configurations with a diverged seed count as the worst value for the sampler; they
would flatten every other point, so they are left out of the points and named under the plot.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from matplotlib.figure import Figure

from service.db import repository as repo
from service.db.session import session_scope
from service.errors import BadInput, NotFound
from service.plots import ParamPanel, history_figure, params_figure
from service.results import param_value
from service.search.history import order_configs, sweep_metric, trial_rows
from service.search.spec import ADAPTIVE_METHODS

KINDS = ("history", "params")
# Metrics that are drawn on a log axis by default (when every value is above 0).
LOSSES = ("final_loss", "best_loss", "val_loss")


def search_figure(
    url: str | None, sweep_id: int, kind: str, log: bool | None = None
) -> tuple[Figure, int]:
    """The figure of ``kind`` for sweep ``sweep_id`` and the configurations it shows.

    BadInput: a grid sweep asked for params (its values are the grid's, not sampled), or no
    configuration finished yet. NotFound: no such sweep.
    """
    with session_scope(url, readonly=True) as session:
        row = repo.get_sweep(session, sweep_id)
        if row is None:
            raise NotFound(f"sweep {sweep_id} does not exist (see `bplab sweep list`)")
        spec, swept, method, name = dict(row.spec), list(row.swept), row.method, row.name
        if kind == "params" and method == "grid":
            raise BadInput(
                f"sweep {sweep_id} is a grid sweep: --kind params is for random and "
                f"model-based sweeps (a grid's curves: bplab plot {sweep_id} -o FILE)"
            )
        if method in ADAPTIVE_METHODS:
            rows = trial_rows(session, sweep_id, spec)
        else:
            rows = order_configs(session, sweep_id, spec)
    metric = sweep_metric(spec)
    shown = [r for r in rows if r["state"] == "complete" and not r["diverged"]]
    if not shown:
        raise BadInput(f"sweep {sweep_id} has no finished configuration to plot yet")
    values = [float(r["value"]) for r in shown]
    use_log = log if log is not None else metric["name"] in LOSSES and min(values) > 0
    label = f"{metric['aggregate']} {metric['name']} over seeds ({metric['goal']})"
    title = f"sweep {sweep_id}: {name} ({method}, {len(rows)} configurations tried)"
    notes = _notes(rows)
    if kind == "history":
        plotted = {id(r) for r in shown}
        fig = history_figure(
            [r["value"] if id(r) in plotted else None for r in rows],
            [r["best_so_far"] for r in rows],
            ylabel=label,
            log=use_log,
            title=title,
            notes=notes,
        )
        return fig, len(rows)
    if not swept:
        raise BadInput(f"sweep {sweep_id} varies no parameter: nothing to plot against")
    firsts = [r for r in shown if r.get("repeat_of") is None]  # a repeat is the same point
    panels = [_panel(name, firsts, spec.get("parameters", {}).get(name)) for name in swept]
    fig = params_figure(
        panels, ylabel=label, log=use_log, goal=metric["goal"], title=title, notes=notes
    )
    return fig, len(firsts)


def _panel(name: str, rows: Sequence[Mapping[str, Any]], axis: Any) -> ParamPanel:
    x = [_numeric(param_value(r["config"], name)) for r in rows]
    y = [float(r["value"]) for r in rows]
    order = [int(r["trial"]) + 1 for r in rows]
    log_x = isinstance(axis, Mapping) and axis.get("distribution") == "log_uniform"
    if all(isinstance(v, int | float) and not isinstance(v, bool) for v in x):
        return ParamPanel(name, x, y, order, log_x=log_x)
    categories = sorted({str(v) for v in x}, key=_natural)
    return ParamPanel(name, [str(v) for v in x], y, order, categories=categories)


def _numeric(value: Any) -> Any:
    """A one-layer hidden is shown as "4": plot it as the number 4."""
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return value


def _natural(label: str) -> tuple[int, float | str]:
    try:
        return (0, float(label))
    except ValueError:
        return (1, label)


def _notes(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    diverged = sum(1 for r in rows if r["state"] == "complete" and r["diverged"])
    notes = []
    if diverged:
        notes.append(f"left out: {diverged} configuration(s) with a diverged seed")
    for state in ("running", "pruned", "fail"):
        n = sum(1 for r in rows if r["state"] == state)
        if n:
            what = {"running": "still training", "pruned": "pruned", "fail": "failed"}[state]
            notes.append(f"not plotted: {n} configuration(s) {what}")
    return notes
