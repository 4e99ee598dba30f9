"""Datasets by name: the 1986 paper's tasks, generated exactly, plus real and user data."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from .family_trees import RELATIONS, family_trees
from .files import load_csv, load_npz
from .sequences import MAX_DELAY, timed_sequences
from .tc import RETINA, tc

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
    "tc": "the T-C problem: a T or a C of 5 blocks in 4 orientations at every position of a "
    "6x6 torus retina (288 patterns, 36 inputs, 1 output: 1 = T); see engine.tc",
    "sequences": "sequence completion for recurrent nets: 2 cue letters of A-E, then 4 more "
    "each one on from the letter 2 before (25 sequences of 6 steps, 5 units per step)",
    "timed_sequences:N": "sequences with N silent steps between the cue and the completion "
    "(25 sequences of 6 + N steps)",
    "digits": "scikit-learn's 8x8 handwritten digits, 64 inputs scaled to [0, 1], 10 classes "
    "(needs scikit-learn: pip install 'bplab[bench]')",
    "iris": "scikit-learn's iris, 4 standardised inputs, 3 classes (needs scikit-learn)",
    "csv:PATH": "a CSV file of numbers; the last column (or the columns named by targets=) "
    "are the targets",
    "npz:PATH": "an .npz file with arrays X (n, d_in) and Y (n, d_out) or y (n,)",
}


@dataclass(frozen=True)
class Dataset:
    """Inputs ``X`` (n, d_in) and targets ``Y`` (n, d_out), float64.

    ``meta`` holds task facts a caller may need (e.g. the family-trees input groups).
    """

    name: str
    X: Array
    Y: Array
    input_names: list[str] | None = field(default=None, compare=False)
    output_names: list[str] | None = field(default=None, compare=False)
    meta: dict[str, object] = field(default_factory=dict, compare=False)

    def __len__(self) -> int:
        return int(self.X.shape[0])

    def split(self, fraction: float, rng: np.random.Generator) -> tuple[Dataset, Dataset]:
        """(train, validation): a seeded random ``fraction`` of the patterns held out.

        At least one pattern goes to each side when 0 < fraction and n >= 2.
        """
        if not 0.0 <= fraction < 1.0:
            raise ValueError(f"validation fraction must be in [0, 1), got {fraction}")
        n = len(self)
        k = min(n - 1, max(1, round(fraction * n))) if fraction > 0 and n >= 2 else 0
        order = rng.permutation(n)
        val, tr = np.sort(order[:k]), np.sort(order[k:])
        return (
            replace(self, X=self.X[tr], Y=self.Y[tr]),
            replace(self, name=f"{self.name} (validation)", X=self.X[val], Y=self.Y[val]),
        )


def _bits(n_bits: int) -> Array:
    """All 2^N bit vectors in counting order, most significant bit first: (2^N, N)."""
    codes = np.arange(2**n_bits)[:, None]
    return ((codes >> np.arange(n_bits - 1, -1, -1)) & 1).astype(np.float64)


def _int_arg(name: str, arg: str, low: int, high: int) -> int:
    try:
        value = int(arg)
    except ValueError:
        raise ValueError(f"dataset {name!r}: N must be an integer, got {arg!r}") from None
    if not low <= value <= high:
        raise ValueError(f"dataset {name!r}: N must be in {low}..{high}, got {value}")
    return value


def xor() -> tuple[Array, Array]:
    X = _bits(2)
    return X, (X[:, :1] != X[:, 1:]).astype(np.float64)


def parity(n_bits: int) -> tuple[Array, Array]:
    X = _bits(n_bits)
    return X, (X.sum(axis=1, keepdims=True) % 2).astype(np.float64)


def symmetry(n_bits: int) -> tuple[Array, Array]:
    X = _bits(n_bits)
    return X, (X[:, ::-1] == X).all(axis=1, keepdims=True).astype(np.float64)


def encoder(n: int) -> tuple[Array, Array]:
    return np.eye(n), np.eye(n)


def negation() -> tuple[Array, Array]:
    X = _bits(4)
    flip = X[:, :1]
    return X, np.abs(X[:, 1:] - flip)  # complement the last 3 bits where the first is 1


def addition(n_bits: int) -> tuple[Array, Array]:
    X = _bits(2 * n_bits)  # a's bits then b's bits, most significant first
    weights = 2 ** np.arange(n_bits - 1, -1, -1)
    total = (X[:, :n_bits] @ weights + X[:, n_bits:] @ weights).astype(np.int64)
    Y = ((total[:, None] >> np.arange(n_bits, -1, -1)) & 1).astype(np.float64)
    return X, Y


def _sklearn(name: str) -> tuple[Array, Array]:
    try:
        from sklearn import datasets as skd
    except ImportError:
        raise ValueError(
            f"dataset {name!r} needs scikit-learn, which is not installed; "
            "install the bench extra: pip install 'bplab[bench]'"
        ) from None
    if name == "digits":
        d = skd.load_digits()
        X = d.data / 16.0
    else:
        d = skd.load_iris()
        X = (d.data - d.data.mean(axis=0)) / d.data.std(axis=0)
    return X.astype(np.float64), np.eye(int(d.target.max()) + 1)[d.target]


_PARAMETRISED = {
    "parity": (parity, 1, 20),
    "symmetry": (symmetry, 1, 20),
    "encoder": (encoder, 1, 4096),
    "addition": (addition, 1, 10),
}


def load_dataset(name: str, **opts: object) -> Dataset:
    """The dataset called ``name`` (see DATASETS); ``targets=`` selects CSV target columns.

    Unknown names raise ValueError listing the valid ones; bad files raise
    ValueError naming the file and the problem.
    """
    kind, _, arg = name.partition(":")
    extra = set(opts) - ({"targets"} if kind == "csv" else set())
    if extra:
        raise ValueError(f"dataset {name!r} takes no options {sorted(extra)}")
    meta: dict[str, object] = {}
    in_names = out_names = None
    if kind in _PARAMETRISED and arg:
        func, low, high = _PARAMETRISED[kind]
        X, Y = func(_int_arg(name, arg, low, high))
    elif kind == "tc" and not arg:
        X, Y, in_names, out_names, pattern_names = tc()
        meta = {"retina": [RETINA, RETINA], "pattern_names": pattern_names}
    elif kind == "sequences" and not arg or kind == "timed_sequences" and arg:
        delay = _int_arg(name, arg, 0, MAX_DELAY) if arg else 0
        X, Y, meta = timed_sequences(delay)
        in_names, out_names = meta.pop("input_names"), meta.pop("output_names")  # type: ignore[assignment]
    elif kind in ("xor", "negation", "family_trees", "digits", "iris") and not arg:
        if kind == "xor":
            X, Y = xor()
        elif kind == "negation":
            X, Y = negation()
        elif kind == "family_trees":
            X, Y, in_names, out_names = family_trees()
            meta = {"input_groups": [24, 12], "relations": list(RELATIONS)}
        else:
            X, Y = _sklearn(kind)
    elif kind == "csv" and arg:
        X, Y, in_names, out_names = load_csv(arg, opts.get("targets"))  # type: ignore[arg-type]
    elif kind == "npz" and arg:
        X, Y = load_npz(arg)
    else:
        raise ValueError(f"unknown dataset {name!r}; valid names: {', '.join(DATASETS)}")
    return Dataset(name, X, Y, in_names, out_names, meta)
