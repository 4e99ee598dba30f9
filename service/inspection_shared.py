"""`bplab inspect` for nets with shared weights: the kernels of a tied layer as field x field
grids (the T-C problem's receptive fields, read as the chapter draws them), and a recurrent
net's weights with its recurrent sources named h<k>(t-1)."""

from __future__ import annotations

from typing import Any

from engine import Dataset, Network
from service.inspection import BIAS, LayerWeights


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
