"""Every dataset's patterns, checked exactly; file errors name the file."""

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine import DATASETS, load_dataset
from engine.family_trees import ENGLISH, ITALIAN


def _rows(d):
    return {
        tuple(int(v) for v in x): tuple(int(v) for v in y) for x, y in zip(d.X, d.Y, strict=True)
    }


def test_xor():
    assert _rows(load_dataset("xor")) == {(0, 0): (0,), (0, 1): (1,), (1, 0): (1,), (1, 1): (0,)}


@given(st.integers(1, 8))
@settings(max_examples=8, deadline=None)
def test_parity_and_symmetry_enumerate_every_vector(n):
    par, sym = _rows(load_dataset(f"parity:{n}")), _rows(load_dataset(f"symmetry:{n}"))
    everything = set(itertools.product((0, 1), repeat=n))
    assert set(par) == set(sym) == everything and len(par) == 2**n
    for bits in everything:
        assert par[bits] == (sum(bits) % 2,)
        assert sym[bits] == (int(bits == bits[::-1]),)


def test_symmetry_6_has_64_patterns_and_8_palindromes():
    d = load_dataset("symmetry:6")
    assert d.X.shape == (64, 6) and d.Y.shape == (64, 1) and d.Y.sum() == 8


def test_encoder_and_negation():
    e = load_dataset("encoder:8")
    assert np.array_equal(e.X, np.eye(8)) and np.array_equal(e.Y, np.eye(8))
    rows = _rows(load_dataset("negation"))
    assert len(rows) == 16
    for bits, out in rows.items():
        expected = tuple(1 - b for b in bits[1:]) if bits[0] else bits[1:]
        assert out == expected


@pytest.mark.parametrize("n", [1, 2, 3])
def test_addition(n):
    rows = _rows(load_dataset(f"addition:{n}"))
    assert len(rows) == 4**n
    for bits, out in rows.items():
        a = int("".join(map(str, bits[:n])), 2)
        b = int("".join(map(str, bits[n:])), 2)
        assert len(out) == n + 1 and int("".join(map(str, out)), 2) == a + b


def test_family_trees_104_queries_exactly():
    d = load_dataset("family_trees")
    assert d.X.shape == (104, 36) and d.Y.shape == (104, 24)
    assert len(d.output_names) == 24 and len(set(d.output_names)) == 24
    assert (d.X[:, :24].sum(axis=1) == 1).all() and (d.X[:, 24:].sum(axis=1) == 1).all()
    assert len({tuple(x) for x in d.X}) == 104  # every (person, relation) once
    names, rels = d.input_names[:24], d.input_names[24:]

    def answers(person, relation):
        hit = (d.X[:, names.index(person)] == 1) & (d.X[:, 24 + rels.index(relation)] == 1)
        if not hit.any():
            return None
        return {d.output_names[k] for k in np.flatnonzero(d.Y[hit][0])}

    assert answers("Colin", "father") == {"James"} and answers("Colin", "mother") == {"Victoria"}
    assert answers("Colin", "uncle") == {"Arthur", "Charles"}
    assert answers("Charlotte", "aunt") == {"Jennifer", "Margaret"}
    assert answers("Margaret", "nephew") == {"Colin"} and answers("Charles", "niece") == {
        "Charlotte"
    }
    assert answers("Christopher", "son") == {"Arthur"}
    assert answers("Penelope", "husband") == {"Christopher"}
    assert answers("Christopher", "husband") is None
    assert answers("Sophia", "uncle") == {"Emilio", "Tomaso"}
    assert answers("Alfonso", "aunt") == {"Gina", "Angela"}
    assert answers("Lucia", "brother") == {"Emilio"}
    # per relation: 6 father, 6 mother, 5 husband, 5 wife, 6 son, 6 daughter, 2 uncle,
    # 2 aunt, 3 brother, 3 sister, 4 nephew, 4 niece per tree
    counts = dict(zip(rels, d.X[:, 24:].sum(axis=0).astype(int), strict=True))
    assert counts == {
        "father": 12,
        "mother": 12,
        "husband": 10,
        "wife": 10,
        "son": 12,
        "daughter": 12,
        "uncle": 4,
        "aunt": 4,
        "brother": 6,
        "sister": 6,
        "nephew": 8,
        "niece": 8,
    }
    two = d.Y.sum(axis=1) == 2
    assert two.sum() == 8 and (d.Y.sum(axis=1)[~two] == 1).all()
    # the trees are isomorphic: the Italian half is the English half with names mapped
    english = d.X[:, :12].any(axis=1)
    assert np.array_equal(
        d.X[english][:, [*range(12), *range(24, 36)]],
        d.X[~english][:, [*range(12, 24), *range(24, 36)]],
    )
    assert np.array_equal(d.Y[english][:, :12], d.Y[~english][:, 12:])
    assert [n for n, _ in ENGLISH + ITALIAN] == names
    assert d.meta["input_groups"] == [24, 12]


def test_real_datasets():
    digits, iris = load_dataset("digits"), load_dataset("iris")
    assert digits.X.shape == (1797, 64) and digits.Y.shape == (1797, 10)
    assert digits.X.min() >= 0 and digits.X.max() <= 1 and (digits.Y.sum(axis=1) == 1).all()
    assert iris.X.shape == (150, 4) and iris.Y.shape == (150, 3)


def test_missing_scikit_learn_names_the_extra(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_sklearn(name, *args, **kw):
        if name.startswith("sklearn"):
            raise ImportError(name)
        return real_import(name, *args, **kw)

    monkeypatch.setattr(builtins, "__import__", no_sklearn)
    with pytest.raises(ValueError, match=r"bplab\[bench\]"):
        load_dataset("iris")


@pytest.mark.parametrize("name", ["nope", "parity", "parity:x", "parity:0", "xor:3", "csv:"])
def test_bad_names_list_the_valid_ones(name):
    with pytest.raises(ValueError) as err:
        load_dataset(name)
    if name in ("nope", "parity", "xor:3", "csv:"):
        for valid in DATASETS:
            assert valid in str(err.value)


def test_csv_targets_and_errors(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("a,b,label\n0,1,1\n1,1,0\n")
    d = load_dataset(f"csv:{path}")
    assert d.X.tolist() == [[0, 1], [1, 1]] and d.Y.tolist() == [[1], [0]]
    d = load_dataset(f"csv:{path}", targets=["a", "b"])
    assert d.X.tolist() == [[1], [0]] and d.output_names == ["a", "b"]
    plain = tmp_path / "p.csv"
    plain.write_text("0,1,1\n1,1,0\n")
    assert load_dataset(f"csv:{plain}").Y.tolist() == [[1], [0]]
    bad = tmp_path / "bad.csv"
    for text, problem in [
        ("a,b\n1,x\n", "not a number"),
        ("1,2\n1\n", "line 2 has 1 columns"),
        ("", "empty"),
        ("a,b\n", "no data rows"),
    ]:
        bad.write_text(text)
        with pytest.raises(ValueError, match=f"bad.csv: .*{problem}"):
            load_dataset(f"csv:{bad}")
    with pytest.raises(ValueError, match="d.csv: no column named 'zz'"):
        load_dataset(f"csv:{path}", targets="zz")
    with pytest.raises(ValueError, match="missing.csv: cannot read"):
        load_dataset(f"csv:{tmp_path / 'missing.csv'}")


def test_npz_and_errors(tmp_path):
    good = tmp_path / "g.npz"
    np.savez(good, X=np.ones((3, 2)), y=np.array([0, 1, 0]))
    d = load_dataset(f"npz:{good}")
    assert d.X.shape == (3, 2) and d.Y.shape == (3, 1)
    wrong = tmp_path / "w.npz"
    np.savez(wrong, A=np.ones(3))
    with pytest.raises(ValueError, match="w.npz: needs arrays 'X' and 'Y'"):
        load_dataset(f"npz:{wrong}")
    rows = tmp_path / "r.npz"
    np.savez(rows, X=np.ones((3, 2)), Y=np.ones((2, 1)))
    with pytest.raises(ValueError, match="r.npz: X has 3 rows but Y has 2"):
        load_dataset(f"npz:{rows}")
    junk = tmp_path / "j.npz"
    junk.write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="j.npz"):
        load_dataset(f"npz:{junk}")
    objects = tmp_path / "o.npz"
    np.savez(objects, X=np.array([{"a": 1}], dtype=object), Y=np.ones((1, 1)))
    with pytest.raises(ValueError, match="o.npz"):
        load_dataset(f"npz:{objects}")


def test_validation_split_is_seeded_and_disjoint():
    d = load_dataset("symmetry:6")
    tr, va = d.split(0.25, np.random.default_rng(1))
    tr2, va2 = d.split(0.25, np.random.default_rng(1))
    assert len(va) == 16 and len(tr) == 48
    assert np.array_equal(va.X, va2.X)
    assert {tuple(x) for x in tr.X} | {tuple(x) for x in va.X} == {tuple(x) for x in d.X}
