"""Analytic gradients against central finite differences, float64."""

import itertools

import numpy as np
import pytest

from engine import ACTIVATIONS, COSTS, OUTPUT_ACTIVATIONS, Network
from engine.costs import output_delta
from engine.masks import group_mask

DEPTHS = ([3, 2], [3, 4, 2], [3, 4, 3, 2])


def _problem(out_act, cost, sizes, skip, seed, masks=None, activation="sigmoid"):
    rng = np.random.default_rng(seed)
    net = Network(
        sizes,
        activation=activation,
        output_activation=out_act,
        cost=cost,
        skip_connections=skip,
        rng=rng,
        init=0.8,
        masks=masks,
    )
    X = rng.uniform(0, 1, size=(5, sizes[0]))
    if out_act == "softmax":
        Y = rng.dirichlet(np.ones(sizes[-1]), size=5)
    else:
        Y = rng.uniform(0.05, 0.95, size=(5, sizes[-1]))
    return net, X, Y


def _check(net, X, Y, h=1e-6):
    analytic = net.gradient(X, Y)
    numeric = []
    for p in net.params:
        g = np.zeros_like(p)
        for i in np.ndindex(p.shape):
            old = p[i]
            p[i] = old + h
            up = net.loss(X, Y)
            p[i] = old - h
            down = net.loss(X, Y)
            p[i] = old
            g[i] = (up - down) / (2 * h)
        numeric.append(g)
    a = np.concatenate([g.ravel() for g in analytic])
    n = np.concatenate([g.ravel() for g in numeric])
    rel = np.linalg.norm(a - n) / max(np.linalg.norm(a) + np.linalg.norm(n), 1e-12)
    return rel, analytic, numeric


@pytest.mark.parametrize(
    "activation,out_act,cost,skip,sizes",
    list(itertools.product(ACTIVATIONS, OUTPUT_ACTIVATIONS, COSTS, (False, True), DEPTHS)),
)
def test_gradient_matches_finite_differences(activation, out_act, cost, skip, sizes):
    net, X, Y = _problem(out_act, cost, sizes, skip, len(sizes) + 7 * skip, None, activation)
    if out_act == "identity" and cost == "cross_entropy":
        # binary cross-entropy is defined for outputs in (0, 1): start near 0.5
        for p in net.params[:-2]:
            p *= 0.3
        net.params[-2][...] *= 0.1
        net.params[-1][...] = 0.5
    rel, _, _ = _check(net, X, Y)
    assert rel < 1e-6, rel


def test_gradient_with_mask_zeroes_removed_connections():
    mask = group_mask([2, 1], [2, 1])
    net, X, Y = _problem("sigmoid", "sse", [3, 3, 2], False, seed=3, masks={0: mask})
    assert (net.params[0][~mask] == 0).all()
    analytic = net.gradient(X, Y)
    assert (analytic[0][~mask] == 0).all()
    rel, analytic, numeric = _check(net, X, Y)
    numeric[0][~mask] = 0.0  # the loss does depend on them; the net has no such weights
    a = np.concatenate([g.ravel() for g in analytic])
    n = np.concatenate([g.ravel() for g in numeric])
    assert np.linalg.norm(a - n) / (np.linalg.norm(a) + np.linalg.norm(n)) < 1e-6


def test_softmax_cross_entropy_shortcut_equals_general_formula():
    rng = np.random.default_rng(0)
    z = rng.normal(size=(4, 6))
    o = np.exp(z) / np.exp(z).sum(axis=0)
    e = rng.dirichlet(np.ones(4), size=6).T
    fast, general, tmp = np.empty_like(o), np.empty_like(o), np.empty_like(o)
    output_delta("cross_entropy", "softmax", o, e, o - e, fast, tmp, 0.5, True)
    output_delta("cross_entropy", "softmax", o, e, o - e, general, tmp, 0.5, False)
    np.testing.assert_allclose(fast, general, rtol=0, atol=1e-15)
