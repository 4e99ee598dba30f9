"""`bplab inspect RUN_ID`: a trained network's weights per layer, and its hidden units at work."""

from __future__ import annotations

import json
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from engine import Dataset
from service.config import Settings
from service.datasets import cached_dataset
from service.inspection import (
    LayerWeights,
    hidden_rows,
    layer_weights,
    trained_network,
    unit_names,
)
from service.inspection_shared import (
    is_shared,
    kernel_grids,
    shared_layer_weights,
    shared_unit_names,
)
from service.output import format_cell


@click.command("inspect")
@click.argument("run_id", type=int)
@click.option(
    "--hidden",
    "show_hidden",
    is_flag=True,
    help="Also show every hidden unit's output (and the net's) for every pattern of the dataset.",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(("table", "json")),
    default="table",
    show_default=True,
    help="Output format.",
)
@click.pass_obj
def inspect(settings: Settings, run_id: int, show_hidden: bool, fmt: str) -> None:
    """RUN_ID's final weights as one table per layer: rows are source units, columns targets.

    The bias row is the weight from the always-on unit; '.' marks a connection a mask
    removes (the family-trees net's block-connected first layer).
    """
    trained = trained_network(settings.database_url, run_id)
    config, net = trained.config, trained.net
    seed, status, solved = trained.seed, trained.status, trained.solved_epoch
    dataset = _dataset(config["dataset"])
    shared = is_shared(net)  # tied or recurrent: service.inspection_shared
    names = shared_unit_names(net, dataset) if shared else unit_names(net, dataset)
    layers = shared_layer_weights(net, names) if shared else layer_weights(net, names)
    kernels = kernel_grids(net)
    rows = hidden_rows(net, dataset, names) if show_hidden and dataset is not None else None
    if show_hidden and dataset is None:
        click.echo(f"dataset {config['dataset']!r} cannot be read; no hidden activations", err=True)
    header = {
        "run_id": run_id,
        "seed": seed,
        "status": status,
        "solved_epoch": solved,
        "dataset": config["dataset"],
        "layer_sizes": list(net.layer_sizes),
        "skip_connections": net.skip_connections,
    }
    if fmt == "json":
        doc: dict[str, Any] = {
            **header,
            "layers": [
                {
                    "layer": lw.index,
                    "name": lw.name,
                    "sources": lw.sources,
                    "targets": lw.targets,
                    "weights": lw.weights,
                }
                for lw in layers
            ],
        }
        if kernels:
            doc["kernels"] = kernels
        if rows is not None:
            doc["patterns"] = rows
        click.echo(json.dumps(doc, indent=2))
        return
    console = Console(width=200)
    sizes = "-".join(str(s) for s in net.layer_sizes)
    skip = " with direct connections" if net.skip_connections else ""
    solved_text = f"solved at sweep {solved}" if solved is not None else "not solved"
    console.print(
        f"run {run_id} (seed {seed}, {status}, {solved_text}): {config['dataset']}, {sizes}{skip}"
    )
    for kernel in kernels:
        console.print(
            f"\nkernel {kernel['kernel']} (bias {kernel['bias']:+.2f}): its receptive field as it "
            "lies on the retina"
        )
        console.print(_grid_table(kernel["weights"]))
    for lw in layers:
        # headings as plain lines: a rich title wraps to the width of a narrow table
        console.print(f"\nlayer {lw.index} ({lw.name}): weights into {', '.join(lw.targets)}")
        console.print(_weight_table(lw))
    if rows:
        console.print("\nhidden units (and outputs) for every pattern")
        console.print(_rows_table(rows))


def _dataset(name: str) -> Dataset | None:
    """The run's dataset for names and patterns; None when it cannot be read any more."""
    try:
        return cached_dataset(name)
    except (ValueError, OSError):
        return None


def _weight_table(lw: LayerWeights) -> Table:
    table = Table()
    table.add_column("from", justify="left")
    for target in lw.targets:
        table.add_column(target, justify="right")
    for source, values in zip(lw.sources, lw.weights, strict=True):
        table.add_row(source, *("." if w is None else f"{w:+.2f}" for w in values))
    return table


def _grid_table(grid: list[list[float]]) -> Table:
    table = Table(show_header=False)
    for _ in grid[0]:
        table.add_column(justify="right")
    for row in grid:
        table.add_row(*(f"{w:+.2f}" for w in row))
    return table


def _rows_table(rows: list[dict[str, Any]]) -> Table:
    table = Table()
    columns = list(rows[0])
    for col in columns:
        table.add_column(
            col, justify="left" if col in ("pattern", "answer", "expected") else "right"
        )
    for row in rows:
        table.add_row(
            *(f"{v:.2f}" if isinstance(v, float) else format_cell(v) for v in row.values())
        )
    return table
