"""`bplab inspect` for nets with shared weights: the kernels of a tied layer as field x field
grids (the T-C problem's receptive fields, read as the chapter draws them), and a recurrent
net's weights with its recurrent sources named h<k>(t-1)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from engine import Dataset, Network
from service.inspection import BIAS, LayerWeights


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
    from service.db import repository as repo
    from service.db.session import session_scope
    from service.errors import NotFound
    from service.networks import network_from_config

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
    n_in, n_out = int(arrays[0].shape[0]), int(arrays[-1].shape[0])
    # The initial weights do not matter (they are overwritten); the rng only builds the net.
    net = network_from_config(config, n_in, n_out, np.random.default_rng(0))
    net.set_params(arrays)
    return TrainedNetwork(config, net, seed, status, solved)


def is_shared(net: Network) -> bool:
    return net.architecture().get("kind") in ("tied", "recurrent")


def _names(dataset: Dataset | None, which: str, count: int, prefix: str) -> list[str]:
    names = getattr(dataset, which, None) if dataset is not None else None
    if names is None or len(names) != count:
        return [f"{prefix}{i + 1}" for i in range(count)]
    return list(names)


def shared_unit_names(net: Network, dataset: Dataset | None) -> list[list[str]]:
    """Every layer's unit names as ``unit_names`` gives them: a tied unit is
    m<map>@r<row>c<col> (its field's position), a recurrent unit h<k>@t<step>."""
    arch = net.architecture()
    sizes = net.layer_sizes
    inputs = _names(dataset, "input_names", sizes[0], "x")
    outputs = _names(dataset, "output_names", sizes[-1], "y")
    if arch["kind"] == "recurrent":
        steps, units = arch["steps"], sizes[1]
        hidden = [f"h{k + 1}@t{t + 1}" for t in range(steps) for k in range(units)]
        return [inputs, hidden, outputs]
    rows, cols = net.map_rows, net.map_cols  # type: ignore[attr-defined]
    tied = [
        f"m{k + 1}@r{r + 1}c{c + 1}"
        for k in range(arch["kernels"])
        for r in range(rows)
        for c in range(cols)
    ]
    dense = [[f"h{l + 1}.{u + 1}" for u in range(size)] for l, size in enumerate(sizes[2:-1])]
    return [inputs, tied, *dense, outputs]


def shared_layer_weights(net: Network, names: list[list[str]]) -> list[LayerWeights]:
    """The full layers' weights (a tied layer's kernels are ``kernel_grids``)."""
    arch = net.architecture()
    params = net.params
    out = []
    if arch["kind"] == "recurrent":
        W, b, W_y, c = params
        step_in = net.step_inputs  # type: ignore[attr-defined]
        inputs = [name.partition(":")[2] or name for name in names[0][:step_in]]
        units = [f"h{k + 1}" for k in range(W.shape[1])]
        recurrent = [f"{u}(t-1)" for u in units]
        step_out = [name.partition(":")[2] or name for name in names[-1][: W_y.shape[1]]]
        for index, (name, sources, targets, weights, bias) in enumerate(
            (
                ("recurrent hidden layer", [*inputs, *recurrent], units, W, b),
                ("output, every step", units, step_out, W_y, c),
            ),
            start=1,
        ):
            rows: list[list[float | None]] = [[float(v) for v in row] for row in weights]
            rows.append([float(v) for v in bias])
            out.append(LayerWeights(index, name, [*sources, BIAS], targets, rows))
        return out
    dense = params[2:]
    layers = len(dense) // 2
    for l in range(layers):
        W, b = dense[2 * l], dense[2 * l + 1]
        rows = [[float(v) for v in row] for row in W]
        rows.append([float(v) for v in b])
        kind = "output" if l == layers - 1 else f"hidden layer {l + 2}"
        out.append(LayerWeights(l + 2, kind, [*names[l + 1], BIAS], list(names[l + 2]), rows))
    return out


def kernel_grids(net: Network) -> list[dict[str, Any]]:
    """One entry per kernel of a tied net: its field x field weights and its bias."""
    if net.architecture().get("kind") != "tied":
        return []
    grids = net.kernel_grids()  # type: ignore[attr-defined]
    biases = net.params[1]
    return [
        {"kernel": k + 1, "weights": grid.tolist(), "bias": float(biases[k])}
        for k, grid in enumerate(grids)
    ]
