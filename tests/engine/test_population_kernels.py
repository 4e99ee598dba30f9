"""The population's stacked products (one GEMM over all members, np.einsum for one output
unit) are used only where they give each member's own np.dot bits."""

from __future__ import annotations

import numpy as np
import pytest

from engine import TrainConfig, load_dataset
from tests.engine.population_helpers import check_population

XOR = load_dataset("xor")


@pytest.mark.parametrize("data_name,sizes", [("xor", [2, 2, 1]), ("symmetry:6", [6, 2, 1])])
def test_shared_input_layer_as_one_gemm(data_name, sizes):
    """Full batch without skip connections: layer 0's forward and gradient products run as
    one GEMM over all members where ``engine.stacked`` verified, for these sizes, that it
    gives each member's own np.dot bits (else per member). Either way: identical members."""
    from engine import stacked

    data = load_dataset(data_name)
    K = 24
    configs = [
        TrainConfig(learning_rate=0.5 * (0.5 + k / K), momentum=0.9, epochs=150, stop_within=0.3)
        for k in range(K)
    ]
    check_population(sizes, data, configs, seeds=list(range(K)))
    rows, m = sizes[0] + 1, data.X.shape[0]
    # a member's product with a dimension 1 is a gemv/dot, never the GEMM's kernel
    assert not stacked._gemm_ok("forward", K, rows, 1, m)
    assert not stacked._gemm_ok("grad", K, rows, sizes[1], 1)
    # where the check passed, the GEMM gives every member's np.dot bits on fresh numbers too,
    # in the layout the engine stores inputs in (sample-major) and the other
    rng = np.random.default_rng(99)
    for sample_major in (True, False):
        x = rng.standard_normal((m, rows)).T if sample_major else rng.standard_normal((rows, m))
        w = rng.standard_normal((K, rows, sizes[1]))
        dl = rng.standard_normal((K, sizes[1], m))
        if stacked._gemm_ok("forward", K, rows, sizes[1], m, sample_major):
            wf = np.ascontiguousarray(w.transpose(1, 0, 2)).reshape(rows, -1)
            fast = np.dot(wf.T, x).reshape(K, sizes[1], m)
            for k in range(K):
                assert np.array_equal(fast[k], np.dot(w[k].T, x))
        if stacked._gemm_ok("grad", K, rows, sizes[1], m, sample_major):
            g = np.dot(x, dl.reshape(-1, m).T).reshape(rows, K, sizes[1])
            for k in range(K):
                assert np.array_equal(g[:, k], np.dot(x, dl[k].T))


@pytest.mark.parametrize("K", [1, 2, 3])
@pytest.mark.parametrize("batch_size", [2, 3])
def test_small_populations_with_mini_batches(K, batch_size):
    """A population of one to three members, one output unit, mini-batches: the one-unit
    gradient's np.einsum once passed its bit check by chance (the check compared 3 numbers
    per draw for one member) and gave other bits than np.dot; the check now compares at
    least engine.verify.TRIAL_RESULTS numbers."""
    configs = [
        TrainConfig(learning_rate=0.3 + 0.1 * k, momentum=0.5, epochs=25, batch_size=batch_size)
        for k in range(K)
    ]
    check_population([2, 2, 1], XOR, configs, seeds=list(range(K)))


@pytest.mark.parametrize("K,rows,m", [(1, 3, 2), (2, 3, 2), (1, 3, 4), (8, 3, 4), (1, 5, 3)])
def test_einsum_is_used_only_where_it_gives_np_dot_bits(K, rows, m):
    from engine import verify

    rng = np.random.default_rng(31)
    for _ in range(200 if verify._einsum_ok(K, rows, m) else 0):
        a = rng.standard_normal((K, rows, m))
        dl = rng.standard_normal((K, 1, m))
        out = np.zeros((K, rows + 2))
        np.einsum("kip,kp->ki", a, dl[:, 0], out=out[:, 1 : 1 + rows])
        for k in range(K):
            assert np.array_equal(out[k, 1 : 1 + rows], np.dot(a[k], dl[k].T)[:, 0])
