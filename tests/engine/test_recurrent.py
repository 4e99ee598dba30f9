"""A recurrent net unfolded in time (engine.recurrent): BPTT checked against finite
differences, against PyTorch autograd on the same unrolled maths (logistic units, which
torch's nn.RNN lacks) and against nn.RNN itself (tanh); the sequence datasets; resuming."""

from __future__ import annotations

import numpy as np
import pytest
import torch  # torch==2.13.0 is in the test extra
from test_gradients import _check as finite_difference_check  # tests/engine, by rootdir

from engine import TrainConfig, TrainState, load_dataset, train, train_population
from engine.recurrent import RecurrentNetwork
from engine.sequences import LETTERS, sequence

STEPS, D_IN, UNITS, D_OUT, N = 4, 3, 5, 2, 6


def _net(activation: str = "sigmoid", seed: int = 0, dtype: str = "float64") -> RecurrentNetwork:
    rng = np.random.default_rng(seed)
    return RecurrentNetwork(
        D_IN, UNITS, D_OUT, STEPS, activation=activation, init=0.7, rng=rng, dtype=dtype
    )


def _data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(1)
    return rng.random((N, STEPS * D_IN)), rng.random((N, STEPS * D_OUT))


@pytest.mark.parametrize("activation", ["sigmoid", "tanh"])
def test_bptt_matches_finite_differences(activation: str) -> None:
    net = _net(activation)
    X, Y = _data()
    rel, analytic, _ = finite_difference_check(net, X, Y)
    assert rel < 1e-9, rel
    assert np.abs(analytic[0][D_IN:]).max() > 1e-3  # W_h, the recurrent weights, do learn


def _torch_unrolled(net: RecurrentNetwork, X: np.ndarray, Y: np.ndarray, activation: str):
    """h_t = f([x_t; h_{t-1}] W + b), y_t = sigmoid(h_t W_y + c), written out by hand in torch
    in the net's dtype: (outputs, [W, b, W_y, c] with their gradients)."""
    W, b, W_y, c = (torch.tensor(p.copy(), requires_grad=True) for p in net.params)
    x = torch.tensor(X.astype(net.dtype)).reshape(N, STEPS, D_IN)
    f = torch.sigmoid if activation == "sigmoid" else torch.tanh
    h = torch.zeros(N, UNITS, dtype=W.dtype)
    outs = []
    for t in range(STEPS):
        h = f(torch.cat([x[:, t], h], dim=1) @ W + b)
        outs.append(torch.sigmoid(h @ W_y + c))
    out = torch.cat(outs, dim=1)
    (0.5 * ((out - torch.tensor(Y.astype(net.dtype))) ** 2).sum()).backward()
    return out.detach().numpy(), (W, b, W_y, c)


@pytest.mark.parametrize("activation", ["sigmoid", "tanh"])
def test_bptt_matches_torch_autograd_on_the_unrolled_net(activation: str) -> None:
    """The maths of the module docstring, differentiated by autograd."""
    net = _net(activation)
    X, Y = _data()
    grads = net.gradient(X, Y)
    out, params = _torch_unrolled(net, X, Y, activation)
    np.testing.assert_allclose(net.forward(X), out, rtol=0, atol=1e-12)
    for mine, theirs in zip(grads, params, strict=True):
        np.testing.assert_allclose(mine, theirs.grad.numpy(), rtol=0, atol=1e-12)


@pytest.mark.parametrize("activation", ["sigmoid", "tanh"])
def test_float32_bptt_matches_torch_float32_autograd(activation: str) -> None:
    """The same in single precision against PyTorch's float32: float32 tolerances."""
    net = _net(activation, dtype="float32")
    X, Y = _data()
    grads = net.gradient(X, Y)
    out, params = _torch_unrolled(net, X, Y, activation)
    assert out.dtype == np.float32 and all(g.dtype == np.float32 for g in grads)
    np.testing.assert_allclose(net.forward(X), out, rtol=1e-5, atol=1e-6)
    for mine, theirs in zip(grads, params, strict=True):
        assert theirs.dtype == torch.float32
        np.testing.assert_allclose(mine, theirs.grad.numpy(), rtol=1e-4, atol=1e-5)


def _torch_rnn(net: RecurrentNetwork, X: np.ndarray, Y: np.ndarray):
    """torch's own RNN layer (tanh; its two biases: ours in b_ih, b_hh held at 0), in the
    net's dtype: (outputs, hidden states, the rnn, W_y, c)."""
    W = net.params[0]
    rnn = torch.nn.RNN(D_IN, UNITS, nonlinearity="tanh", batch_first=True)
    rnn = rnn.to(torch.float64 if net.dtype == np.float64 else torch.float32)
    with torch.no_grad():
        rnn.weight_ih_l0.copy_(torch.tensor(W[:D_IN].T))
        rnn.weight_hh_l0.copy_(torch.tensor(W[D_IN:].T))
        rnn.bias_ih_l0.copy_(torch.tensor(net.params[1]))
        rnn.bias_hh_l0.zero_()
    W_y, c = (torch.tensor(p.copy(), requires_grad=True) for p in net.params[2:])
    hs, _ = rnn(torch.tensor(X.astype(net.dtype)).reshape(N, STEPS, D_IN))
    out = torch.sigmoid(hs @ W_y + c).reshape(N, STEPS * D_OUT)
    (0.5 * ((out - torch.tensor(Y.astype(net.dtype))) ** 2).sum()).backward()
    return out.detach().numpy(), hs.detach().numpy().reshape(N, -1), rnn, W_y, c


TOLERANCES = {  # (rtol, atol) of the outputs and hidden states, then of the gradients
    "float64": ((0, 1e-12), (0, 1e-12)),
    "float32": ((1e-5, 1e-6), (1e-4, 1e-5)),
}


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_bptt_matches_torch_nn_rnn(dtype: str) -> None:
    """Against nn.RNN in float64, and in float32 (float32 tolerances)."""
    (rtol, atol), grad_tolerances = TOLERANCES[dtype]
    net = _net("tanh", dtype=dtype)
    X, Y = _data()
    grads = net.gradient(X, Y)
    out, hs, rnn, W_y, c = _torch_rnn(net, X, Y)
    assert out.dtype == hs.dtype == net.dtype == np.dtype(dtype)
    np.testing.assert_allclose(net.forward(X), out, rtol=rtol, atol=atol)
    np.testing.assert_allclose(net.hidden(X)[0], hs, rtol=rtol, atol=atol)
    rtol, atol = grad_tolerances
    ih, hh = rnn.weight_ih_l0.grad.numpy().T, rnn.weight_hh_l0.grad.numpy().T
    np.testing.assert_allclose(grads[0][:D_IN], ih, rtol=rtol, atol=atol)
    np.testing.assert_allclose(grads[0][D_IN:], hh, rtol=rtol, atol=atol)
    np.testing.assert_allclose(grads[1], rnn.bias_ih_l0.grad.numpy(), rtol=rtol, atol=atol)
    np.testing.assert_allclose(grads[2], W_y.grad.numpy(), rtol=rtol, atol=atol)
    np.testing.assert_allclose(grads[3], c.grad.numpy(), rtol=rtol, atol=atol)


def test_sequence_datasets() -> None:
    assert sequence(0, 3) == [0, 3, 1, 4, 2, 0]  # A D B E C A
    data = load_dataset("sequences")
    assert data.X.shape == data.Y.shape == (25, 30) and data.meta["steps"] == 6
    steps = data.Y.reshape(25, 6, 5)
    assert (steps.sum(axis=2) == 1).all()  # one letter per step
    inputs = data.X.reshape(25, 6, 5)
    assert (inputs[:, :2].sum(axis=2) == 1).all() and not inputs[:, 2:].any()  # cue only
    np.testing.assert_array_equal(inputs[:, :2], steps[:, :2])  # the cue is echoed
    assert data.meta["pattern_names"][1] == "ABBCCD"
    timed = load_dataset("timed_sequences:3")
    assert timed.meta["steps"] == 9 and timed.meta["pattern_names"][1] == "AB...BCCD"
    silent = timed.Y.reshape(25, 9, 5)[:, 2:5]
    assert not silent.any()  # no letter during the pause
    np.testing.assert_array_equal(timed.Y.reshape(25, 9, 5)[:, 5:], steps[:, 2:])
    with pytest.raises(ValueError, match="N must be in 0..20"):
        load_dataset("timed_sequences:21")
    assert LETTERS == "ABCDE"


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_a_recurrent_net_learns_to_complete_and_resumes_bit_identically(dtype: str) -> None:
    data = load_dataset("sequences")
    config = TrainConfig(learning_rate=0.005, momentum=0.9, epochs=120, stop_within=0.2,
                         dtype=dtype)  # fmt: skip

    def fresh() -> tuple[RecurrentNetwork, np.random.Generator]:
        rng = np.random.default_rng(0)
        net = RecurrentNetwork(5, 20, 5, 6, activation="tanh", init=0.5, rng=rng, dtype=dtype)
        return net, rng

    net, rng = fresh()
    whole = train(net, data.X, data.Y, config, rng=rng)
    assert whole.solved_epoch is not None and whole.accuracy[-1] == 1.0
    net2, rng2 = fresh()
    states = []
    train(net2, data.X, data.Y, config, rng=rng2, checkpoint_every=50, on_checkpoint=states.append)
    net3, rng3 = fresh()
    state = TrainState.from_bytes(states[0].to_bytes())  # as a checkpoint row stores it
    assert {p.dtype.name for p in state.params} == {dtype}
    assert {b.dtype.name for b in state.buffers.values()} == {dtype}
    rest = train(net3, data.X, data.Y, config, rng=rng3, state=state)
    np.testing.assert_array_equal(rest.loss, whole.loss[50:])
    np.testing.assert_array_equal(net3.theta, net.theta)
    assert net3.theta.dtype == np.dtype(dtype)
    # a population of one (how the service trains it, never stacked) is the lone run
    net4, rng4 = fresh()
    (alone,) = train_population([net4], data.X, data.Y, [config], rngs=[rng4])
    np.testing.assert_array_equal(alone.loss, whole.loss)
    np.testing.assert_array_equal(net4.theta, net.theta)


def test_softmax_outputs_are_refused() -> None:
    with pytest.raises(ValueError, match="softmax"):
        RecurrentNetwork(2, 2, 2, 3, output_activation="softmax", rng=np.random.default_rng(0))


def test_saved_shared_weight_nets_load_back(tmp_path) -> None:
    from engine import Network
    from engine.tied import TiedNetwork

    rng = np.random.default_rng(4)
    nets = [
        _net("tanh"),
        TiedNetwork((5, 6), 2, [3], 2, field=3, wrap=True, activation="tanh", rng=rng),
    ]
    X = np.random.default_rng(5).random((3, 30))
    for k, net in enumerate(nets):
        path = tmp_path / f"net{k}.npz"
        net.save(path)
        back = Network.load(path)
        assert type(back) is type(net) and back.architecture() == net.architecture()
        np.testing.assert_array_equal(back.theta, net.theta)
        x = X[:, : net.layer_sizes[0]] if k == 0 else X
        np.testing.assert_array_equal(back.forward(x), net.forward(x))
