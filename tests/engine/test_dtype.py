"""dtype float32 | float64 (issue 22): float32 nets compute in float32 end to end (nothing
upcast), match PyTorch's float32 SGD, and keep the guarantees within their dtype: a
population member is bit-identical to its lone run, a resumed run to an uninterrupted one."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch  # torch==2.13.0 is in the test extra

from engine import Network, TrainConfig, TrainState, load_dataset, train, train_population
from engine.recurrent import RecurrentNetwork
from engine.stacked_updates import StackedUpdates
from engine.tied import TiedNetwork
from engine.training import _Updates, prepare_set

XOR = load_dataset("xor")
DIGITS = load_dataset("digits")


def _arrays(obj: object, seen: set[int] | None = None, depth: int = 0) -> list[np.ndarray]:
    """Every ndarray reachable from ``obj``'s attributes (lists, dicts, nested objects)."""
    seen = set() if seen is None else seen
    if id(obj) in seen or depth > 6:
        return []
    seen.add(id(obj))
    if isinstance(obj, np.ndarray):
        return [obj]
    if isinstance(obj, dict):
        items = list(obj.values())
    elif isinstance(obj, list | tuple):
        items = list(obj)
    elif hasattr(obj, "__dict__") and type(obj).__module__.startswith("engine"):
        items = list(vars(obj).values())
    else:
        return []
    return [a for item in items for a in _arrays(item, seen, depth + 1)]


def _floats(obj: object) -> set[str]:
    return {a.dtype.name for a in _arrays(obj) if a.dtype.kind == "f"}


@pytest.mark.parametrize("optimizer", ["sgd", "nesterov", "adam"])
@pytest.mark.parametrize("batch_size", [None, 7])
def test_a_float32_step_leaves_no_float64_array_in_the_state(optimizer, batch_size):
    """The weights, gradients, buffers, optimizer state and the data of a float32 net stay
    float32 through training steps: a float64 array anywhere would upcast the hot path."""
    rng = np.random.default_rng(0)
    net = Network([64, 16, 10], output_activation="softmax", cost="cross_entropy", rng=rng,
                  dtype="float32")  # fmt: skip
    config = TrainConfig(optimizer=optimizer, batch_size=batch_size, learning_rate=0.1,
                         weight_decay=1e-3, decay=1e-4, error_margin=0.05,
                         dtype="float32")  # fmt: skip
    X, Y, kind, rows = prepare_set(net, DIGITS.X[:50], DIGITS.Y[:50], None)
    from engine.optimizers import make_optimizer

    opt = make_optimizer(optimizer, net.theta.size, net.dtype)
    updates = _Updates(net, X, Y, config, kind, rows, opt)
    updates.start()
    with np.errstate(all="ignore"):
        for _ in range(2):
            (updates.full_epoch if updates.full else updates.batch_epoch)(rng)
    assert _floats(net) == {"float32"}
    assert _floats(updates) == {"float32"}
    assert _floats(opt) == {"float32"}


def _shared_weight_net(kind: str, dtype: str) -> tuple[Network, np.ndarray, np.ndarray]:
    """A tied net on the T-C retina or a recurrent net on the letter sequences, and data."""
    rng = np.random.default_rng(4)
    if kind == "tied":
        data = load_dataset("tc")
        net = TiedNetwork((6, 6), 2, [3], 1, wrap=True, init=1.0, rng=rng, dtype=dtype)
        return net, data.X[:40], data.Y[:40]
    data = load_dataset("sequences")
    net = RecurrentNetwork(5, 6, 5, 6, activation="tanh", init=0.5, rng=rng, dtype=dtype)
    return net, data.X, data.Y


@pytest.mark.parametrize("kind", ["tied", "recurrent"])
@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
@pytest.mark.parametrize("batch_size", [None, 7])
def test_a_float32_shared_weight_net_leaves_no_float64_array_in_the_state(
    kind, optimizer, batch_size
):
    """As above for the nets with layers of their own: the kernels, patches, unfolded
    steps and BPTT buffers are float32 too."""
    net, X, Y = _shared_weight_net(kind, "float32")
    config = TrainConfig(optimizer=optimizer, batch_size=batch_size, learning_rate=0.05,
                         weight_decay=1e-3, decay=1e-4, error_margin=0.05,
                         dtype="float32")  # fmt: skip
    X, Y, kind_, rows = prepare_set(net, X, Y, None)
    from engine.optimizers import make_optimizer

    opt = make_optimizer(optimizer, net.theta.size, net.dtype)
    updates = _Updates(net, X, Y, config, kind_, rows, opt)
    updates.start()
    rng = np.random.default_rng(0)
    with np.errstate(all="ignore"):
        for _ in range(2):
            (updates.full_epoch if updates.full else updates.batch_epoch)(rng)
    workspaces = [updates.ws] if updates.full else [updates.ws_batch, updates.ws_rest]
    assert all(type(ws).__name__ != "Workspace" for ws in workspaces)  # the net's own
    assert _floats(net) == {"float32"}
    assert _floats(updates) == {"float32"}
    assert all(_floats(ws) == {"float32"} for ws in workspaces)
    assert _floats(opt) == {"float32"}
    assert net.forward(X).dtype == np.float32
    assert all(g.dtype == np.float32 for g in net.gradient(X, Y))


def test_a_float32_population_step_leaves_no_float64_array_in_the_state():
    nets = [Network([64, 16, 10], output_activation="softmax", cost="cross_entropy",
                    rng=np.random.default_rng(s), dtype="float32") for s in range(3)]  # fmt: skip
    configs = [TrainConfig(learning_rate=0.1 * (s + 1), weight_decay=1e-3 * s, error_margin=0.05,
                           batch_size=None, dtype="float32") for s in range(3)]  # fmt: skip
    X, Y, kind, rows = prepare_set(nets[0], DIGITS.X[:50], DIGITS.Y[:50], None)
    from engine.stacked_optimizer import StackedOptimizer

    theta = np.stack([n.theta for n in nets])
    opt = StackedOptimizer.zeros("sgd", 3, theta.shape[1], theta.dtype)
    rngs = [np.random.default_rng(s) for s in range(3)]
    updates = StackedUpdates(nets[0], X, Y, configs, kind, rows, None, theta, opt, rngs)
    with np.errstate(all="ignore"):
        updates.epoch(np.arange(3))
    # the settings columns stay float64 on purpose: products of them (-eps / m, Adam's
    # eps / bc1) are formed in float64, as a single net's Python floats, and rounded to
    # float32 once where they meet the arrays (engine.dtypes); all else is float32
    floats = {name: a.dtype.name for name, a in vars(updates).items()
              if isinstance(a, np.ndarray) and a.dtype.kind == "f"}  # fmt: skip
    settings = {floats.pop(name) for name in ("lr_col", "wd", "factor", "margin")}
    assert settings == {"float64"} and set(floats.values()) == {"float32"}, floats
    assert _floats(updates.stack) == {"float32"}
    # flags and ones count the right patterns (flags @ ones), exact in float64 at any size
    counters = (updates.ws.flags, updates.ws.ones)
    assert {a.dtype.name for a in counters} == {"float64"}
    buffers = [a for a in _arrays(updates.ws) if not any(a is c for c in counters)]
    assert {a.dtype.name for a in buffers if a.dtype.kind == "f"} == {"float32"}
    assert _floats(updates.opt) == {"float32"}


def test_float32_training_gives_float32_weights_and_float64_metrics():
    net = Network([2, 2, 1], rng=np.random.default_rng(3), dtype="float32")
    history = train(net, XOR.X, XOR.Y, TrainConfig(epochs=50, dtype="float32"),
                    rng=np.random.default_rng(3))  # fmt: skip
    assert net.theta.dtype == np.float32 and all(p.dtype == np.float32 for p in net.params)
    assert net.forward(XOR.X).dtype == np.float32
    assert history.loss.dtype == np.float64 and isinstance(float(history.loss[-1]), float)
    assert all(p.dtype == np.float32 for p in history.state.params)
    assert all(b.dtype == np.float32 for b in history.state.buffers.values())


def test_a_float32_net_starts_from_its_float64_twins_weights_rounded():
    a = Network([4, 3, 2], rng=np.random.default_rng(1))
    b = Network([4, 3, 2], rng=np.random.default_rng(1), dtype="float32")
    assert np.array_equal(a.theta.astype(np.float32), b.theta)


def test_dtype_must_be_known_and_match_the_net():
    with pytest.raises(ValueError, match="unknown dtype 'float16'"):
        TrainConfig(dtype="float16")
    with pytest.raises(ValueError, match="unknown dtype"):
        Network([2, 2, 1], rng=np.random.default_rng(0), dtype="int32")
    net = Network([2, 2, 1], rng=np.random.default_rng(0))
    with pytest.raises(ValueError, match="dtype 'float32'.*float64"):
        train(net, XOR.X, XOR.Y, TrainConfig(dtype="float32"), rng=np.random.default_rng(0))
    nets = [Network([2, 2, 1], rng=np.random.default_rng(s), dtype=d)
            for s, d in enumerate(["float32", "float64"])]  # fmt: skip
    cfgs = [TrainConfig(dtype="float32"), TrainConfig(dtype="float64")]
    with pytest.raises(ValueError, match="another shape"):
        train_population(nets, XOR.X, XOR.Y, cfgs, rngs=[np.random.default_rng(0)] * 2)


def test_a_state_resumes_only_in_its_own_dtype():
    cfg64 = TrainConfig(epochs=5)
    net = Network([2, 2, 1], rng=np.random.default_rng(0))
    state = train(net, XOR.X, XOR.Y, cfg64, rng=np.random.default_rng(0)).state
    net32 = Network([2, 2, 1], rng=np.random.default_rng(0), dtype="float32")
    cfg32 = TrainConfig(epochs=10, dtype="float32")
    with pytest.raises(ValueError, match="float64 weights, the network is float32"):
        train(net32, XOR.X, XOR.Y, cfg32, rng=np.random.default_rng(0), state=state)


def test_save_and_load_keep_float32():
    net = Network([3, 4, 2], rng=np.random.default_rng(2), dtype="float32")
    buf = io.BytesIO()
    net.save(buf)
    buf.seek(0)
    back = Network.load(buf)
    assert back.dtype == np.float32 and np.array_equal(back.theta, net.theta)


@pytest.mark.parametrize("kind", ["tied", "recurrent"])
def test_save_and_load_keep_float32_with_shared_weights(kind):
    net, X, _ = _shared_weight_net(kind, "float32")
    buf = io.BytesIO()
    net.save(buf)
    buf.seek(0)
    back = Network.load(buf)
    assert type(back) is type(net) and back.dtype == np.float32
    assert np.array_equal(back.theta, net.theta)
    assert np.array_equal(back.forward(X), net.forward(X))


def _float32_torch_reference(net: Network, X: np.ndarray, Y: np.ndarray, steps: int,
                             lr: float, mom: float) -> list[np.ndarray]:  # fmt: skip
    """PyTorch float32: sigmoid hidden layer, softmax outputs, mean cross-entropy, SGD with
    momentum (v = mom v + g, p -= lr v: the paper's rule with v scaled by -1/lr)."""
    params = [torch.tensor(p.copy(), requires_grad=True) for p in net.params]
    x, y = torch.tensor(X, dtype=torch.float32), torch.tensor(Y, dtype=torch.float32)
    opt = torch.optim.SGD(params, lr=lr, momentum=mom)
    for _ in range(steps):
        opt.zero_grad()
        W1, b1, W2, b2 = params
        h = torch.sigmoid(x @ W1 + b1)
        loss = torch.nn.functional.cross_entropy(h @ W2 + b2, y.argmax(dim=1))
        loss.backward()
        opt.step()
    assert all(p.dtype == torch.float32 for p in params)
    return [p.detach().numpy() for p in params]


def test_float32_gradient_and_steps_match_torch_float32():
    X, Y = DIGITS.X[:200], DIGITS.Y[:200]
    make = lambda: Network([64, 32, 10], output_activation="softmax", cost="cross_entropy",  # noqa: E731
                           rng=np.random.default_rng(7), dtype="float32")  # fmt: skip
    net = make()
    grads = net.gradient(X, Y)
    params = [torch.tensor(p.copy(), requires_grad=True) for p in net.params]
    W1, b1, W2, b2 = params
    x = torch.tensor(X, dtype=torch.float32)
    h = torch.sigmoid(x @ W1 + b1)
    torch.nn.functional.cross_entropy(h @ W2 + b2, torch.tensor(Y.argmax(axis=1))).backward()
    for mine, theirs in zip(grads, params, strict=True):
        assert mine.dtype == np.float32
        np.testing.assert_allclose(mine, theirs.grad.numpy(), rtol=1e-4, atol=1e-6)

    cfg = TrainConfig(learning_rate=0.5, momentum=0.9, epochs=20, stop_within=None,
                      dtype="float32")  # fmt: skip
    net = make()
    ref = _float32_torch_reference(net, X, Y, 20, 0.5, 0.9)
    train(net, X, Y, cfg, rng=np.random.default_rng(0))
    for mine, theirs in zip(net.params, ref, strict=True):
        assert mine.dtype == np.float32
        np.testing.assert_allclose(mine, theirs, rtol=1e-4, atol=2e-5)


CASES = [
    # (sizes, output, cost, skip, optimizer, batch) - among them sizes where the population
    # runs layer 0 as one shared GEMM and one-unit gradients as one einsum (verified in float32)
    ([2, 2, 1], "sigmoid", "sse", False, "sgd", None),
    ([4, 3, 1], "sigmoid", "sse", True, "nesterov", 1),
    ([64, 32, 10], "softmax", "cross_entropy", False, "sgd", None),
    ([64, 32, 10], "softmax", "cross_entropy", False, "adam", 16),
    ([6, 5, 1], "sigmoid", "cross_entropy", False, "sgd", 5),
]


def _data(sizes):
    if sizes[0] == 64:
        return DIGITS.X[:120], DIGITS.Y[:120]
    if sizes[0] == 2:
        return XOR.X, XOR.Y
    data = load_dataset(f"symmetry:{sizes[0]}")
    return data.X, data.Y


@pytest.mark.parametrize(("sizes", "output", "cost", "skip", "optimizer", "batch"), CASES)
def test_float32_population_members_are_bit_identical_to_lone_runs(
    sizes, output, cost, skip, optimizer, batch
):
    X, Y = _data(sizes)
    K = 5

    def net(k):
        return Network(sizes, output_activation=output, cost=cost, skip_connections=skip,
                       rng=np.random.default_rng(10 + k), dtype="float32")  # fmt: skip

    configs = [
        TrainConfig(
            learning_rate=(0.3 if optimizer != "adam" else 0.01) * (1 + k / 4),
            momentum=0.5 + 0.1 * k,
            optimizer=optimizer,
            batch_size=batch,
            epochs=25,
            weight_decay=1e-3 * (k % 2),
            decay=1e-4 * (k % 3 == 1),
            error_margin=0.1 * (k % 3 == 2),
            dtype="float32",
            schedule=[{"until": 10, "momentum": 0.3}] if k == 4 else (),
        )  # fmt: skip
        for k in range(K)
    ]
    alone = []
    for k in range(K):
        n = net(k)
        h = train(n, X, Y, configs[k], rng=np.random.default_rng(100 + k))
        alone.append((n.theta.copy(), h))
    nets = [net(k) for k in range(K)]
    rngs = [np.random.default_rng(100 + k) for k in range(K)]
    histories = train_population(nets, X, Y, configs, rngs=rngs)
    for k in range(K):
        theta, h = alone[k]
        assert nets[k].theta.dtype == np.float32
        assert np.array_equal(nets[k].theta, theta), k
        assert np.array_equal(histories[k].loss, h.loss), k
        assert np.array_equal(histories[k].max_error, h.max_error), k


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
@pytest.mark.parametrize("batch_size", [None, 3])
def test_float32_resume_is_bit_identical(optimizer, batch_size):
    data = load_dataset("symmetry:4")
    cfg = TrainConfig(learning_rate=0.3 if optimizer != "adam" else 0.01, optimizer=optimizer,
                      batch_size=batch_size, epochs=40, weight_decay=0.01, patience=30,
                      restore_best=True, dtype="float32")  # fmt: skip
    rng = np.random.default_rng(5)
    full_net = Network([4, 3, 1], rng=rng, dtype="float32")
    saved: list[TrainState] = []
    full = train(full_net, data.X, data.Y, cfg, rng=rng, checkpoint_every=15,
                 on_checkpoint=saved.append)  # fmt: skip
    state = TrainState.from_bytes(saved[0].to_bytes())
    assert all(p.dtype == np.float32 for p in state.params)
    assert state.best_theta is not None and state.best_theta.dtype == np.float32
    rng2 = np.random.default_rng(999)
    net2 = Network([4, 3, 1], rng=rng2, dtype="float32")
    rest = train(net2, data.X, data.Y, cfg, rng=rng2, state=state)
    assert np.array_equal(full_net.theta, net2.theta)
    assert np.array_equal(full.loss[15:], rest.loss)

    # and as members of a population resumed from their states
    nets = [Network([4, 3, 1], rng=np.random.default_rng(s), dtype="float32") for s in (1, 2)]
    rngs = [np.random.default_rng(s) for s in (1, 2)]
    together = train_population(nets, data.X, data.Y, [cfg, cfg], rngs=rngs,
                                states=[state, None])  # fmt: skip
    assert np.array_equal(nets[0].theta, full_net.theta)
    assert np.array_equal(together[0].loss, rest.loss)
