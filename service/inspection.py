"""A trained network laid out for reading: weights per layer and hidden activations per pattern.

Used by ``bplab inspect`` (``trained_network`` by ``bplab plot --kind kernels`` too). A
layer's table has one row per source unit (the inputs, earlier hidden layers when there are
skip connections, and the bias, the weight from the unit that is always 1) and one column per
unit of the layer, so the 1986 paper's pictures of learned weights (e.g. the symmetry net's
1:2:4 mirror pairs) can be read off directly.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from engine import Dataset, Network
from service.db import repository as repo
from service.db.session import session_scope
from service.errors import NotFound
from service.networks import network_with_weights

BIAS = "bias"


@dataclass(frozen=True)
class TrainedNetwork:
    """A finished run's network with its final weights (what `inspect` and `plot` read)."""

    config: dict[str, Any]
    net: Network
    seed: int
    status: str
    solved_epoch: int | None


def trained_network(url: str, run_id: int) -> TrainedNetwork:
    """Run ``run_id``'s net rebuilt from its config with its stored final weights; NotFound
    (exit 2) for a run that does not exist or has no weights (not finished)."""
    with session_scope(url, readonly=True) as session:
        row = repo.get_run(session, run_id)
        if row is None:
            raise NotFound(f"run {run_id} does not exist")
        config: dict[str, Any] = dict(row.config)
        try:
            arrays = repo.load_weights(session, run_id)
        except repo.NotFound:
            raise NotFound(
                f"run {run_id} has no stored weights (status {row.status}; only finished runs have)"
            ) from None
        seed, status, solved = int(row.seed), str(row.status), row.solved_epoch
    return TrainedNetwork(config, network_with_weights(config, arrays), seed, status, solved)


@dataclass(frozen=True)
class LayerWeights:
    """Layer ``index`` (1 = the first hidden layer): W as (sources, targets) plus the bias row.

    ``weights[i][j]`` is None where a mask removes the connection (it does not exist).
    """

    index: int
    name: str
    sources: list[str]
    targets: list[str]
    weights: list[list[float | None]]


def unit_names(net: Network, dataset: Dataset | None) -> list[list[str]]:
    """Names of every layer's units: [inputs, hidden 1, ..., outputs].

    Inputs and outputs take the dataset's names when it has them (x1.., y1.. otherwise);
    hidden units are h1, h2, ... for one hidden layer and h<layer>.<unit> for several.
    """
    sizes = net.layer_sizes
    names_in = list(dataset.input_names) if dataset and dataset.input_names else None
    names_out = list(dataset.output_names) if dataset and dataset.output_names else None
    if names_in is None or len(names_in) != sizes[0]:
        names_in = [f"x{i + 1}" for i in range(sizes[0])]
    if names_out is None or len(names_out) != sizes[-1]:
        names_out = [f"y{i + 1}" for i in range(sizes[-1])]
    hidden = sizes[1:-1]
    layers = [names_in]
    for l, size in enumerate(hidden):
        prefix = "h" if len(hidden) == 1 else f"h{l + 1}."
        layers.append([f"{prefix}{k + 1}" for k in range(size)])
    layers.append(names_out)
    return layers


def layer_weights(net: Network, names: list[list[str]]) -> list[LayerWeights]:
    """One LayerWeights per weight layer, sources in the order of W's rows, bias last."""
    out = []
    params = net.params
    n_layers = len(net.layer_sizes) - 1
    for l in range(n_layers):
        W, b = params[2 * l], params[2 * l + 1]
        if net.skip_connections:
            sources = [name for layer in names[: l + 1] for name in layer]
        else:
            sources = list(names[l])
        mask = net.masks[l]
        rows: list[list[float | None]] = []
        for i in range(W.shape[0]):
            rows.append(
                [
                    None if mask is not None and not mask[i, j] else float(W[i, j])
                    for j in range(W.shape[1])
                ]
            )
        rows.append([float(v) for v in b])
        kind = "output" if l == n_layers - 1 else f"hidden layer {l + 1}"
        out.append(LayerWeights(l + 1, kind, [*sources, BIAS], list(names[l + 1]), rows))
    return out


def pattern_label(x: np.ndarray, input_names: Sequence[str], named: bool) -> str:
    """How a pattern reads in a table: its bits (010010), or the names of its on inputs."""
    binary = bool(np.isin(x, (0.0, 1.0)).all())
    if named and binary:
        return ", ".join(n for n, v in zip(input_names, x, strict=True) if v == 1.0) or "(none)"
    if binary and len(x) <= 24:
        return "".join(str(int(v)) for v in x)
    return " ".join(f"{v:.3g}" for v in x)


def hidden_rows(
    net: Network, dataset: Dataset, names: list[list[str]], *, max_outputs: int = 8
) -> list[dict[str, Any]]:
    """One row per pattern of the dataset: its label, every hidden unit's output, the outputs.

    With more than ``max_outputs`` outputs, ``answer`` lists the outputs above 0.5 and
    ``expected`` the targets that are on, instead of one column per output.
    """
    named = bool(dataset.input_names) and len(dataset.input_names or []) == net.layer_sizes[0]
    hidden = net.hidden(dataset.X)
    outputs = net.forward(dataset.X)
    rows = []
    for p in range(len(dataset)):
        row: dict[str, Any] = {"pattern": pattern_label(dataset.X[p], names[0], named)}
        for l, h in enumerate(hidden):
            for k, name in enumerate(names[l + 1]):
                row[name] = float(h[p, k])
        out_names = names[-1]
        if len(out_names) <= max_outputs:
            for k, name in enumerate(out_names):
                row[f"out {name}"] = float(outputs[p, k])
                row[f"target {name}"] = float(dataset.Y[p, k])
        else:
            row["answer"] = ", ".join(
                n for n, o in zip(out_names, outputs[p], strict=True) if o > 0.5
            )
            row["expected"] = ", ".join(
                n for n, e in zip(out_names, dataset.Y[p], strict=True) if e > 0.5
            )
        rows.append(row)
    return rows
