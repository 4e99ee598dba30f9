"""Datasets by name: the 1986 paper's tasks, generated exactly, plus real and user data."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

Array = np.ndarray

DATASETS: dict[str, str] = {
    "xor": "exclusive or of 2 bits (4 patterns)",
    "parity:N": "1 iff the N-bit input has an odd number of ones (2^N patterns)",
    "symmetry:N": "1 iff the N-bit input is a palindrome (2^N patterns; N=6 gives 64)",
    "encoder:N": "N one-hot patterns mapped to themselves (N-k-N encoder)",
    "negation": "4 bits -> the last 3 bits, complemented when the first bit is 1 (16 patterns)",
    "addition:N": "two N-bit numbers -> their (N+1)-bit sum (4^N patterns)",
    "family_trees": "Hinton's two isomorphic family trees: (person, relation) -> people "
    "(104 queries, 24+12 one-hot inputs, 24 outputs)",
    "digits": "scikit-learn's 8x8 handwritten digits, 64 inputs scaled to [0, 1], 10 classes "
    "(needs scikit-learn: pip install 'bplab[bench]')",
    "iris": "scikit-learn's iris, 4 standardised inputs, 3 classes (needs scikit-learn)",
    "csv:PATH": "a CSV file of numbers; the last column (or the columns named by targets=) "
    "are the targets",
    "npz:PATH": "an .npz file with arrays X (n, d_in) and Y (n, d_out) or y (n,)",
}


@dataclass(frozen=True)
class Dataset:
    """Inputs ``X`` (n, d_in) and targets ``Y`` (n, d_out), float64."""

    name: str
    X: Array
    Y: Array
    input_names: list[str] | None = field(default=None, compare=False)
    output_names: list[str] | None = field(default=None, compare=False)
    description: str = ""


def load_dataset(name: str, **opts: object) -> Dataset:
    raise NotImplementedError("being written")
