"""The patterns each 1986 experiment trains on, as its example spec asks for them.

tests/engine/test_datasets.py checks the generators in general; here: the exact sets the
paper's nets see (counts, widths, the palindromes, odd parity) and the family trees'
100/4 split that validation_split 0.04 gives, reproducible from the seed.
"""

from __future__ import annotations

import numpy as np

from engine import load_dataset
from service.datasets import training_data
from service.spec import parse_spec


def _targets(name: str) -> dict[str, tuple[int, ...]]:
    d = load_dataset(name)
    return {
        "".join(str(int(v)) for v in x): tuple(int(v) for v in y)
        for x, y in zip(d.X, d.Y, strict=True)
    }


def test_symmetry_6_targets_are_exactly_the_eight_palindromes() -> None:
    rows = _targets("symmetry:6")
    assert len(rows) == 64
    on = sorted(bits for bits, (y,) in rows.items() if y == 1)
    assert on == ["000000", "001100", "010010", "011110", "100001", "101101", "110011", "111111"]


def test_parity_4_is_one_for_the_eight_odd_vectors() -> None:
    rows = _targets("parity:4")
    assert len(rows) == 16
    assert sorted(b for b, (y,) in rows.items() if y) == sorted(
        b for b in rows if b.count("1") % 2 == 1
    )
    assert sum(y for (y,) in rows.values()) == 8


def test_xor_encoder_negation_addition_shapes_fit_the_papers_nets() -> None:
    widths = {
        "xor": (4, 2, 1),
        "encoder:8": (8, 8, 8),
        "negation": (16, 4, 3),
        "addition:2": (16, 4, 3),
        "family_trees": (104, 36, 24),
    }
    for name, (n, d_in, d_out) in widths.items():
        d = load_dataset(name)
        assert (len(d), d.X.shape[1], d.Y.shape[1]) == (n, d_in, d_out), name
    # two spot checks of the arithmetic: 3 + 3 = 110, 2 + 1 = 011; negation 1101 -> 010
    assert _targets("addition:2")["1111"] == (1, 1, 0)
    assert _targets("addition:2")["1001"] == (0, 1, 1)
    assert _targets("negation")["1101"] == (0, 1, 0)
    assert _targets("negation")["0101"] == (1, 0, 1)


def _family_config(**params: object) -> dict:
    spec = parse_spec(
        {"dataset": "family_trees", "parameters": {"validation_split": 0.04, **params}}
    )
    return spec.configs()[0]


def test_family_trees_holds_out_exactly_4_of_104_reproducibly_by_seed() -> None:
    config = _family_config()
    full = load_dataset("family_trees")
    keys = {tuple(x) for x in full.X}
    held = []
    for seed in (0, 1, 2):
        X, Y, (Xv, Yv) = training_data(config, seed)
        assert X.shape == (100, 36) and Y.shape == (100, 24)
        assert Xv.shape == (4, 36) and Yv.shape == (4, 24)
        train_keys, val_keys = {tuple(x) for x in X}, {tuple(x) for x in Xv}
        assert not train_keys & val_keys and train_keys | val_keys == keys
        X2, _, (Xv2, _) = training_data(config, seed)
        assert np.array_equal(Xv, Xv2) and np.array_equal(X, X2)
        held.append(val_keys)
    assert held[0] != held[1] or held[1] != held[2]  # each seed draws its own 4
