"""Network construction, parameter layout, masks, saving."""

import io

import numpy as np
import pytest

from engine import ACTIVATIONS, COSTS, Network, TrainConfig, load_dataset, train
from engine.masks import group_mask


def test_params_layout_and_forward_formula():
    rng = np.random.default_rng(0)
    net = Network([3, 4, 2], activation="tanh", output_activation="identity", rng=rng)
    W1, b1, W2, b2 = net.params
    assert [p.shape for p in net.params] == [(3, 4), (4,), (4, 2), (2,)]
    X = rng.normal(size=(5, 3))
    np.testing.assert_allclose(net.forward(X), np.tanh(X @ W1 + b1) @ W2 + b2, rtol=1e-13)
    W1[0, 0] = 7.0  # params are views: writing into them changes the network
    assert net.params[0][0, 0] == 7.0


def test_skip_connections_concatenate_input_and_earlier_layers():
    rng = np.random.default_rng(0)
    net = Network([2, 1, 1], skip_connections=True, rng=rng)
    W1, b1, W2, b2 = net.params
    assert W1.shape == (2, 1) and W2.shape == (3, 1)
    X = rng.uniform(size=(4, 2))
    sig = lambda z: 1 / (1 + np.exp(-z))  # noqa: E731
    h = sig(X @ W1 + b1)
    np.testing.assert_allclose(net.forward(X), sig(np.hstack([X, h]) @ W2 + b2), rtol=1e-13)


def test_init_schemes_and_seeds():
    a = Network([4, 3, 2], rng=np.random.default_rng(1), init=0.3)
    assert all(np.abs(p).max() <= 0.3 for p in a.params)
    b = Network([4, 3, 2], rng=np.random.default_rng(1), init=0.3)
    assert np.array_equal(a.theta, b.theta)
    for init in ("xavier", "he", "uniform"):
        Network([4, 3, 2], rng=np.random.default_rng(1), init=init)
    with pytest.raises(ValueError):
        Network([4, 2], rng=np.random.default_rng(1), init=-1.0)


@pytest.mark.parametrize(
    "kw,names",
    [
        ({"activation": "swish"}, ACTIVATIONS),
        ({"cost": "hinge"}, COSTS),
        ({"output_activation": "relu"}, ["identity", "sigmoid", "softmax"]),
    ],
)
def test_unknown_names_list_valid_names(kw, names):
    with pytest.raises(ValueError) as err:
        Network([2, 1], rng=np.random.default_rng(0), **kw)
    for name in names:
        assert name in str(err.value)


def test_group_mask_and_masked_training_keeps_zeros():
    mask = group_mask(input_groups=[24, 12], hidden_groups=[6, 6])
    assert mask.shape == (36, 12) and mask.sum() == 24 * 6 + 12 * 6
    assert mask[:24, :6].all() and not mask[:24, 6:].any() and mask[24:, 6:].all()
    d = load_dataset("family_trees")
    for optimizer in ("sgd", "adam"):
        rng = np.random.default_rng(0)
        net = Network([36, 12, 12, 6, 24], rng=rng, masks={0: mask})
        cfg = TrainConfig(
            learning_rate=0.005 if optimizer == "sgd" else 0.01,
            momentum=0.5,
            epochs=5,
            weight_decay=0.4,
            optimizer=optimizer,
        )
        train(net, d.X, d.Y, cfg, rng=rng)
        assert (net.params[0][~mask] == 0).all() and (net.params[0][mask] != 0).all()
    with pytest.raises(ValueError, match="shape"):
        Network([36, 12, 24], rng=np.random.default_rng(0), masks={0: mask[:, :6]})


def test_save_and_load_without_pickles(tmp_path):
    rng = np.random.default_rng(0)
    net = Network(
        [3, 2, 2],
        skip_connections=True,
        output_activation="softmax",
        cost="cross_entropy",
        rng=rng,
        masks=[np.array([[1, 0], [1, 1], [0, 1]]), None],
    )
    path = tmp_path / "w.npz"
    net.save(path)
    with np.load(path, allow_pickle=False) as z:
        assert {"W1", "b1", "W2", "b2", "mask0", "architecture"} <= set(z.files)
    again = Network.load(path)
    X = rng.normal(size=(4, 3))
    assert np.array_equal(again.forward(X), net.forward(X)) and repr(again) == repr(net)
    buf = io.BytesIO()
    net.save(buf)
    buf.seek(0)
    assert np.array_equal(Network.load(buf).theta, net.theta)
    bogus = tmp_path / "x.npz"
    np.savez(bogus, W1=np.ones((2, 2)))
    with pytest.raises(ValueError, match="not a saved bplab network"):
        Network.load(bogus)


def test_forward_on_large_input_is_chunked_consistently():
    rng = np.random.default_rng(0)
    net = Network([5, 7, 3], output_activation="softmax", rng=rng)
    X = rng.normal(size=(9000, 5))
    out = net.forward(X)
    np.testing.assert_allclose(out[-10:], net.forward(X[-10:]), rtol=1e-13)
    np.testing.assert_allclose(out.sum(axis=1), 1.0, rtol=1e-13)
