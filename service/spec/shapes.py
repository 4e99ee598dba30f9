"""What a spec's dataset looks like (patterns, inputs, outputs, targets), before any run.

Data files are read and checked here, at `sweep plan`, `run` and `submit`, so that a text
cell, a ragged row or X and Y of different lengths is one line naming the file before
anything is written, not a sweep whose every run fails. Generated datasets are described
from a table instead: encoder:4096 or parity:20 are too big to build just to be measured.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from engine import load_dataset

from .errors import Invalid


@dataclass(frozen=True)
class DataShape:
    """The facts about a dataset that decide which configurations make sense on it."""

    patterns: int
    inputs: int
    outputs: int
    target_min: float
    target_max: float
    # every target row is a distribution (entries >= 0 summing to 1): what softmax can reach
    rows_are_distributions: bool


def _bits(n: int) -> int:
    return 2**n


# base name -> (patterns, inputs, outputs, one-hot targets), as functions of N for name:N.
# Every generated dataset has targets in [0, 1]. (The engine's generators define these
# sizes; tests/spec checks the table against them for the small cases.)
_GENERATED = {
    "xor": lambda n: (4, 2, 1, False),
    "negation": lambda n: (16, 4, 3, False),
    "family_trees": lambda n: (104, 36, 24, False),
    "tc": lambda n: (288, 36, 1, False),
    "sequences": lambda n: (25, 30, 30, False),
    "timed_sequences": lambda n: (25, 5 * (6 + n), 5 * (6 + n), False),
    "digits": lambda n: (1797, 64, 10, True),
    "iris": lambda n: (150, 4, 3, True),
    "parity": lambda n: (_bits(n), n, 1, False),
    "symmetry": lambda n: (_bits(n), n, 1, False),
    "encoder": lambda n: (n, n, n, True),
    "addition": lambda n: (4**n, 2 * n, n + 1, False),
}

_FILE_SHAPES: dict[tuple[str, float, int], DataShape] = {}


def data_shape(dataset: str) -> DataShape | None:
    """The shape of a checked dataset name; files are read (once per version of the file)."""
    from service.targets import split_targets  # csv target columns ride in the name

    dataset, targets = split_targets(dataset)
    base, _, arg = dataset.partition(":")
    table = _GENERATED.get(base)
    if table is not None:
        patterns, inputs, outputs, one_hot = table(int(arg) if arg else 0)
        return DataShape(patterns, inputs, outputs, 0.0, 1.0, one_hot)
    if base in ("csv", "npz"):
        return check_data_file(base, Path(arg), "dataset", targets)
    return None


def check_data_file(
    kind: str, path: Path, field: str, targets: list[str | int] | None = None
) -> DataShape:
    """Read a csv:/npz: file as a run would and describe it; Invalid names what is wrong.
    ``targets``: the CSV's target columns (the spec's ``targets:``; default the last)."""
    stat = path.stat()
    key = (f"{path};{targets}", stat.st_mtime, stat.st_size)
    shape = _FILE_SHAPES.get(key)
    if shape is not None:
        return shape
    try:
        # the same reader the runs use, so that what passes here is what they will train on
        opts = {} if targets is None else {"targets": targets}
        data = load_dataset(f"{kind}:{path}", **opts)
    except ValueError as exc:
        raise Invalid(field, " ".join(str(exc).split())) from None
    X, Y = data.X, data.Y
    if X.shape[0] == 0:
        raise Invalid(field, f"{path}: no patterns (X and Y have 0 rows)")
    if X.shape[1] == 0 or Y.shape[1] == 0:
        raise Invalid(
            field, f"{path}: needs at least one input and one target, got X {X.shape}, Y {Y.shape}"
        )
    # The engine's npz reader checks finiteness; checked again here so that no file kind
    # can slip a NaN through to a run that would only "diverge" at epoch 1.
    for name, array in (("X", X), ("Y", Y)):
        bad = np.argwhere(~np.isfinite(array))
        if bad.size:
            row, col = (int(i) for i in bad[0])
            raise Invalid(
                field, f"{path}: {name} row {row + 1}, column {col + 1}: not a finite number"
            )
    sums = Y.sum(axis=1)
    shape = DataShape(
        patterns=int(X.shape[0]),
        inputs=int(X.shape[1]),
        outputs=int(Y.shape[1]),
        target_min=float(Y.min()),
        target_max=float(Y.max()),
        rows_are_distributions=bool((Y >= 0).all() and np.allclose(sums, 1.0, atol=1e-6)),
    )
    _FILE_SHAPES[key] = shape
    return shape
