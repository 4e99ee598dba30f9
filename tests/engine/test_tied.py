"""Tied weights (engine.tied): the gradient of a shared kernel is the sum over positions,
checked against finite differences and against PyTorch's conv2d; the T-C dataset; training
and resuming like any net."""

from __future__ import annotations

import numpy as np
import pytest
import torch  # torch==2.13.0 is in the test extra
from test_gradients import _check as finite_difference_check  # tests/engine, by rootdir

from engine import TrainConfig, TrainState, load_dataset, train, train_population
from engine.tc import shapes
from engine.tied import TiedNetwork, field_indices

F = torch.nn.functional


def _net(wrap: bool, hidden: list[int], seed: int = 0, **kw) -> TiedNetwork:
    return TiedNetwork(
        (5, 6), 2, hidden, 2, wrap=wrap, init=0.7, rng=np.random.default_rng(seed), **kw
    )


def _data(seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.random((7, 30)), rng.random((7, 2))


@pytest.mark.parametrize("wrap", [False, True])
@pytest.mark.parametrize("hidden", [[], [3]])
def test_gradient_matches_finite_differences(wrap: bool, hidden: list[int]) -> None:
    net = _net(wrap, hidden)
    X, Y = _data()
    rel, analytic, _ = finite_difference_check(net, X, Y)
    assert rel < 1e-9, rel
    assert np.abs(analytic[0]).max() > 1e-3  # the kernels do get a gradient


def _torch_tied(net: TiedNetwork, X: np.ndarray, Y: np.ndarray, activation: str):
    """PyTorch's conv2d net with ``net``'s weights, in their dtype: (outputs, tied layer,
    parameters with their gradients of the summed squared error, in ``params`` order)."""
    wrap = net.wrap
    kernels = torch.tensor(net.params[0].T.reshape(2, 1, 3, 3).copy(), requires_grad=True)
    k_bias = torch.tensor(net.params[1].copy(), requires_grad=True)
    dense = [torch.tensor(p.copy(), requires_grad=True) for p in net.params[2:]]
    image = torch.tensor(X.astype(net.dtype)).reshape(len(X), 1, 5, 6)
    if wrap:
        image = F.pad(image, (1, 1, 1, 1), mode="circular")
    f = torch.sigmoid if activation == "sigmoid" else torch.tanh
    tied = f(F.conv2d(image, kernels, k_bias)).flatten(1)  # map-major, as engine.tied
    h = f(tied @ dense[0] + dense[1])
    out = torch.sigmoid(h @ dense[2] + dense[3])
    loss = 0.5 * ((out - torch.tensor(Y.astype(net.dtype))) ** 2).sum()
    loss.backward()
    theirs = [kernels.grad.numpy().reshape(2, 9).T, k_bias.grad.numpy()]
    theirs += [p.grad.numpy() for p in dense]
    return out.detach().numpy(), tied.detach().numpy(), theirs


@pytest.mark.parametrize("wrap", [False, True])
@pytest.mark.parametrize("activation", ["sigmoid", "tanh"])
def test_forward_and_gradients_match_torch_conv2d(wrap: bool, activation: str) -> None:
    net = _net(wrap, [3], activation=activation)
    X, Y = _data()
    grads = net.gradient(X, Y)
    out, tied, theirs = _torch_tied(net, X, Y, activation)
    np.testing.assert_allclose(net.forward(X), out, rtol=0, atol=1e-12)
    np.testing.assert_allclose(net.hidden(X)[0], tied, rtol=0, atol=1e-12)
    for mine, ref in zip(grads, theirs, strict=True):
        np.testing.assert_allclose(mine, ref, rtol=0, atol=1e-12)


@pytest.mark.parametrize("wrap", [False, True])
@pytest.mark.parametrize("activation", ["sigmoid", "tanh"])
def test_float32_forward_and_gradients_match_torch_float32_conv2d(
    wrap: bool, activation: str
) -> None:
    """The same in single precision against PyTorch's float32: float32 tolerances (a few
    units in the last place of sums over positions and patterns)."""
    net = _net(wrap, [3], activation=activation, dtype="float32")
    X, Y = _data()
    grads = net.gradient(X, Y)
    out, tied, theirs = _torch_tied(net, X, Y, activation)
    assert out.dtype == np.float32 and all(g.dtype == np.float32 for g in grads)
    np.testing.assert_allclose(net.forward(X), out, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(net.hidden(X)[0], tied, rtol=1e-5, atol=1e-6)
    for mine, ref in zip(grads, theirs, strict=True):
        np.testing.assert_allclose(mine, ref, rtol=1e-4, atol=1e-5)


def test_float32_sgd_steps_match_torch_float32() -> None:
    """20 full-batch steps with momentum against torch.optim.SGD in float32 (v = mom v + g,
    p -= lr v: the paper's rule with v scaled by -1/lr)."""
    net = _net(True, [3], seed=2, dtype="float32")
    X, Y = _data()
    params = [torch.tensor(p.copy(), requires_grad=True) for p in net.params]
    opt = torch.optim.SGD(params, lr=0.2, momentum=0.9)
    image = F.pad(torch.tensor(X, dtype=torch.float32).reshape(7, 1, 5, 6), (1,) * 4,
                  mode="circular")  # fmt: skip
    for _ in range(20):
        opt.zero_grad()
        kernels, k_bias, W1, b1, W2, b2 = params
        tied = torch.sigmoid(F.conv2d(image, kernels.T.reshape(2, 1, 3, 3), k_bias)).flatten(1)
        out = torch.sigmoid(torch.sigmoid(tied @ W1 + b1) @ W2 + b2)
        (0.5 * ((out - torch.tensor(Y, dtype=torch.float32)) ** 2).sum()).backward()
        opt.step()
    config = TrainConfig(learning_rate=0.2, momentum=0.9, epochs=20, stop_within=None,
                         dtype="float32")  # fmt: skip
    train(net, X, Y, config, rng=np.random.default_rng(0))
    for mine, ref in zip(net.params, params, strict=True):
        assert mine.dtype == np.float32 and ref.dtype == torch.float32
        np.testing.assert_allclose(mine, ref.detach().numpy(), rtol=1e-4, atol=2e-5)


def test_field_indices_valid_and_wrapped() -> None:
    idx, rows, cols = field_indices(4, 5, 3, wrap=False)
    assert (rows, cols) == (2, 3) and idx.shape == (9, 6)
    assert idx[:, 0].tolist() == [0, 1, 2, 5, 6, 7, 10, 11, 12]  # top-left field
    idx, rows, cols = field_indices(4, 5, 3, wrap=True)
    assert (rows, cols) == (4, 5)
    assert idx[:, 0].tolist() == [19, 15, 16, 4, 0, 1, 9, 5, 6]  # centred on pixel 0
    with pytest.raises(ValueError, match="does not fit"):
        field_indices(2, 5, 3, wrap=False)


def test_tc_dataset_is_every_shape_at_every_position() -> None:
    data = load_dataset("tc")
    assert data.X.shape == (288, 36) and data.Y.shape == (288, 1)
    assert data.meta["retina"] == [6, 6]
    assert int(data.Y.sum()) == 144  # balanced: 144 T, 144 C
    assert (data.X.sum(axis=1) == 5).all()  # five blocks each
    assert len({row.tobytes() for row in data.X}) == 288  # no pattern twice
    blocks = {name: set(b) for name, b in shapes()}
    assert len({frozenset(b) for b in blocks.values()}) == 8  # 4 distinct orientations each
    # the T's crossbar: three blocks in a row with the stem under the middle one
    assert blocks["T0"] == {(0, 0), (0, 1), (0, 2), (1, 1), (2, 1)}
    # translating a pattern around the torus gives another pattern of the set
    first = data.X[0].reshape(6, 6)
    assert np.roll(first, (2, 3), axis=(0, 1)).ravel().tobytes() in {r.tobytes() for r in data.X}


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_a_tied_net_resumes_bit_identically_and_trains_alone(dtype: str) -> None:
    data = load_dataset("tc")
    config = TrainConfig(learning_rate=0.01, momentum=0.9, epochs=40, dtype=dtype)

    def fresh() -> tuple[TiedNetwork, np.random.Generator]:
        rng = np.random.default_rng(3)
        return TiedNetwork((6, 6), 2, [], 1, wrap=True, init=1.0, rng=rng, dtype=dtype), rng

    net, rng = fresh()
    whole = train(net, data.X, data.Y, config, rng=rng)
    net2, rng2 = fresh()
    states = []
    train(net2, data.X, data.Y, config, rng=rng2, checkpoint_every=15, on_checkpoint=states.append)
    net3, rng3 = fresh()
    state = TrainState.from_bytes(states[0].to_bytes())  # as a checkpoint row stores it
    assert {p.dtype.name for p in state.params} == {dtype}
    rest = train(net3, data.X, data.Y, config, rng=rng3, state=state)
    assert states[0].epoch == 15
    np.testing.assert_array_equal(rest.loss, whole.loss[15:])
    np.testing.assert_array_equal(net3.theta, net.theta)
    assert net3.theta.dtype == net.theta.dtype == np.dtype(dtype)
    pair = [fresh(), fresh()]
    with pytest.raises(ValueError, match="trains alone"):
        train_population(
            [n for n, _ in pair], data.X, data.Y, [config] * 2, rngs=[r for _, r in pair]
        )
    # a population of one is the lone run, to the bit
    net4, rng4 = fresh()
    (alone,) = train_population([net4], data.X, data.Y, [config], rngs=[rng4])
    np.testing.assert_array_equal(alone.loss, whole.loss)
    np.testing.assert_array_equal(net4.theta, net.theta)


def test_saved_arrays_and_weight_decay_spare_the_kernel_biases(tmp_path) -> None:
    net = _net(True, [])
    assert net.weight_indicator[: net.kernels].tolist() == [0.0, 0.0]
    assert net.weight_indicator[net.kernels : net.lead].all()
    net.save(tmp_path / "tied.npz")
    with np.load(tmp_path / "tied.npz") as saved:  # params order, as `bplab runs weights`
        np.testing.assert_array_equal(saved["W1"], net.params[0])  # the kernels
        np.testing.assert_array_equal(saved["b1"], net.params[1])
        np.testing.assert_array_equal(saved["W2"], net.params[2])
