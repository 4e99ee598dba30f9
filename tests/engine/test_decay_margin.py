"""`decay` (the 1986 paper's direct decrement of every weight after each weight change) and
`error_margin` (its dead zone): their numbers by hand, the gradient they leave, a population
member and a resumed run bit for bit a lone uninterrupted run."""

from __future__ import annotations

import numpy as np
import pytest

from engine import Network, TrainConfig, TrainState, load_dataset, train, train_population

XOR = load_dataset("xor")
PARITY = load_dataset("parity:3")


def _net(sizes=(2, 2, 1), seed=0, init=0.8) -> Network:
    return Network(list(sizes), init=init, rng=np.random.default_rng(seed))


def _flat(arrays) -> np.ndarray:
    return np.concatenate([np.ravel(a) for a in arrays])


def _weights_mask(net: Network) -> np.ndarray:
    """True on weights, False on biases, in ``params`` order."""
    return _flat([np.ones_like(p) if k % 2 == 0 else np.zeros_like(p) for k, p in
                  enumerate(net.params)]).astype(bool)  # fmt: skip


@pytest.mark.parametrize("decay_biases", [True, False])
def test_decay_shrinks_every_weight_after_each_change_by_hand(decay_biases: bool) -> None:
    """Two full-batch sweeps of sgd with momentum, computed by hand from net.gradient: the
    weight change is the plain one (momentum carries no decay), then every weight (and every
    bias with decay_biases) is multiplied by 1 - decay."""
    eps, alpha, decay = 0.5, 0.9, 0.05
    net = _net()
    w = _flat(net.params)
    weights = _weights_mask(net)
    keep = np.where(weights | decay_biases, 1.0 - decay, 1.0)
    velocity = np.zeros_like(w)
    probe = _net()
    for _ in range(2):
        probe.set_params(_split(probe, w))
        grad = _flat(probe.gradient(XOR.X, XOR.Y))
        velocity = alpha * velocity - eps * grad
        w = (w + velocity) * keep
    cfg = TrainConfig(
        learning_rate=eps, momentum=alpha, epochs=2, decay=decay, decay_biases=decay_biases
    )
    train(net, XOR.X, XOR.Y, cfg, rng=np.random.default_rng(0))
    np.testing.assert_allclose(_flat(net.params), w, rtol=1e-13, atol=1e-15)
    # the decrement is not in the optimizer's velocity: after one sweep it is the plain one
    runs = []
    for d in (decay, 0.0):
        cfg = TrainConfig(learning_rate=eps, momentum=alpha, epochs=1, decay=d)
        runs.append(train(_net(), XOR.X, XOR.Y, cfg, rng=np.random.default_rng(0)).state)
    np.testing.assert_array_equal(runs[0].buffers["velocity"], runs[1].buffers["velocity"])
    assert not np.array_equal(runs[0].params[0], runs[1].params[0])


def _split(net: Network, flat: np.ndarray) -> list[np.ndarray]:
    out, at = [], 0
    for p in net.params:
        out.append(flat[at : at + p.size].reshape(p.shape))
        at += p.size
    return out


def test_decay_acts_after_every_per_pattern_update() -> None:
    """batch_size 1: four weight changes per sweep of XOR, each followed by the decrement."""
    eps, decay, seed = 0.3, 0.01, 4
    net = _net(seed=1)
    w = _flat(net.params)
    order = np.random.default_rng(seed).permutation(4)
    probe = _net(seed=1)
    for i in order:
        probe.set_params(_split(probe, w))
        w = (w - eps * _flat(probe.gradient(XOR.X[i : i + 1], XOR.Y[i : i + 1]))) * (1 - decay)
    cfg = TrainConfig(learning_rate=eps, momentum=0.0, epochs=1, batch_size=1, decay=decay)
    train(net, XOR.X, XOR.Y, cfg, rng=np.random.default_rng(seed))
    np.testing.assert_allclose(_flat(net.params), w, rtol=1e-13, atol=1e-15)


def test_decay_is_not_the_l2_weight_decay() -> None:
    """The paper's 0.2% as L2 (weight_decay 0.4 at eps 0.005) passes through momentum and
    shrinks the weights far more than decay 0.002 over the same sweeps."""
    common = dict(learning_rate=0.005, momentum=0.9, epochs=200)
    direct, l2 = _net(init=2.0), _net(init=2.0)
    train(direct, XOR.X, XOR.Y, TrainConfig(decay=0.002, **common), rng=np.random.default_rng(0))
    train(l2, XOR.X, XOR.Y, TrainConfig(weight_decay=0.4, **common), rng=np.random.default_rng(0))
    size = lambda n: float(np.abs(n.params[0]).sum())  # noqa: E731
    assert size(l2) < 0.5 * size(direct)


def test_error_margin_zeroes_the_delta_inside_the_dead_zone() -> None:
    net = _net(seed=3, init=2.0)
    out = net.forward(XOR.X)[:, 0]
    err = np.abs(out - XOR.Y[:, 0])
    margin = float(np.sort(err)[1] + np.sort(err)[2]) / 2  # two patterns in, two out
    inside = err < margin
    assert inside.sum() == 2
    with_margin = _flat(net.gradient(XOR.X, XOR.Y, error_margin=margin))
    # sse is a sum over patterns: the patterns inside the zone add nothing
    outside_only = _flat(net.gradient(XOR.X[~inside], XOR.Y[~inside]))
    np.testing.assert_allclose(with_margin, outside_only, rtol=1e-13, atol=1e-16)
    assert not np.allclose(with_margin, _flat(net.gradient(XOR.X, XOR.Y)))
    # every output inside: no delta at all, and a training sweep changes nothing
    assert not np.any(_flat(net.gradient(XOR.X, XOR.Y, error_margin=0.999)))
    before = net.theta.copy()
    cfg = TrainConfig(learning_rate=0.5, momentum=0.9, epochs=3, error_margin=0.999)
    history = train(net, XOR.X, XOR.Y, cfg, rng=np.random.default_rng(0))
    np.testing.assert_array_equal(net.theta, before)
    # the reported loss is the plain cost, not the dead zone's
    assert history.loss[-1] == pytest.approx(net.loss(XOR.X, XOR.Y), rel=1e-12)
    assert history.loss[-1] > 0.1


def test_error_margin_per_output_unit() -> None:
    """Outputs are judged one by one: a pattern with one output inside and one outside."""
    net = Network([3, 4, 2], init=1.5, rng=np.random.default_rng(7))
    X = np.random.default_rng(8).uniform(0, 1, size=(6, 3))
    Y = (np.random.default_rng(9).uniform(0, 1, size=(6, 2)) > 0.5).astype(float)
    out = net.forward(X)
    margin = float(np.median(np.abs(out - Y)))
    inside = np.abs(out - Y) < margin
    assert inside.any() and (~inside).any()
    got = _flat(net.gradient(X, Y, error_margin=margin))
    # by hand: the sse gradient of the outputs outside the zone only, through a copy of the
    # net whose targets inside the zone are its own outputs (error exactly 0 there)
    Y_dead = np.where(inside, out, Y)
    np.testing.assert_allclose(got, _flat(net.gradient(X, Y_dead)), rtol=1e-12, atol=1e-15)


def _dead_zone_loss(net: Network, X, Y, margin: float) -> float:
    diff = net.forward(X) - Y
    diff[np.abs(diff) < margin] = 0.0
    return 0.5 * float((diff**2).sum())


@pytest.mark.parametrize("margin", [0.05, 0.4])
def test_gradient_check_passes_with_a_margin(margin: float) -> None:
    """Away from the zone's edges the update's gradient is that of the dead-zone cost (the
    plain cost's when no output is inside): central differences agree."""
    net = Network([3, 3, 2], init=1.0, rng=np.random.default_rng(11))
    X = PARITY.X
    Y = np.hstack([PARITY.Y, 1 - PARITY.Y])
    err = np.abs(net.forward(X) - Y)
    assert np.abs(err - margin).min() > 1e-3  # no output at the edge of the zone
    analytic = _flat(net.gradient(X, Y, error_margin=margin))
    numeric, h = [], 1e-6
    for p in net.params:
        for i in np.ndindex(p.shape):
            old = p[i]
            p[i] = old + h
            up = _dead_zone_loss(net, X, Y, margin)
            p[i] = old - h
            down = _dead_zone_loss(net, X, Y, margin)
            p[i] = old
            numeric.append((up - down) / (2 * h))
    np.testing.assert_allclose(analytic, numeric, rtol=1e-6, atol=1e-9)
    if margin == 0.05:  # nothing inside: the plain gradient
        assert not (err < margin).any()
        np.testing.assert_array_equal(analytic, _flat(net.gradient(X, Y)))
    else:
        assert (err < margin).any()


MIXED = [
    dict(learning_rate=0.5, decay=0.002),
    dict(learning_rate=0.3, decay=0.001, decay_biases=False, error_margin=0.45),
    dict(learning_rate=0.5),
    dict(learning_rate=0.4, error_margin=0.4, schedule=[{"until": 20, "momentum": 0.5}]),
    dict(learning_rate=0.6, decay=0.003, error_margin=0.48, weight_decay=0.01),
]


def _mixed(batch_size, epochs=120, **extra) -> list[TrainConfig]:
    return [
        TrainConfig(momentum=0.9, epochs=epochs - 7 * k, batch_size=batch_size, **c, **extra)
        for k, c in enumerate(MIXED)
    ]


def _alone(cfg: TrainConfig, seed: int, state: TrainState | None = None):
    net = Network([3, 3, 1], rng=np.random.default_rng(seed))
    rng = np.random.default_rng(100 + seed)
    return train(net, PARITY.X, PARITY.Y, cfg, rng=rng, state=state), net


@pytest.mark.parametrize("batch_size", [None, 1, 3])
def test_population_members_are_their_lone_runs(batch_size) -> None:
    configs = _mixed(batch_size)
    nets = [Network([3, 3, 1], rng=np.random.default_rng(k)) for k in range(len(configs))]
    rngs = [np.random.default_rng(100 + k) for k in range(len(configs))]
    together = train_population(nets, PARITY.X, PARITY.Y, configs, rngs=rngs)
    for k, cfg in enumerate(configs):
        history, net = _alone(cfg, k)
        np.testing.assert_array_equal(together[k].loss, history.loss)
        np.testing.assert_array_equal(together[k].max_error, history.max_error)
        np.testing.assert_array_equal(nets[k].theta, net.theta)
        for key, value in history.state.buffers.items():
            np.testing.assert_array_equal(together[k].state.buffers[key], value)
    # and the settings mattered: decay and the margin change the numbers
    plain, _ = _alone(TrainConfig(momentum=0.9, epochs=120, batch_size=batch_size, **MIXED[2]), 0)
    assert not np.array_equal(plain.loss, together[0].loss)


@pytest.mark.parametrize("batch_size", [None, 2])
def test_resumed_runs_end_where_the_uninterrupted_run_ends(batch_size) -> None:
    configs = _mixed(batch_size)
    states: list[TrainState | None] = []
    for k, cfg in enumerate(configs):
        saved: list[TrainState] = []
        net = Network([3, 3, 1], rng=np.random.default_rng(k))
        train(
            net, PARITY.X, PARITY.Y, cfg, rng=np.random.default_rng(100 + k),
            checkpoint_every=15, on_checkpoint=saved.append,
        )  # fmt: skip
        states.append(TrainState.from_bytes(saved[k % len(saved)].to_bytes()))
    for k, cfg in enumerate(configs):
        full, full_net = _alone(cfg, k)
        rest, rest_net = _alone(cfg, k, state=states[k])
        assert rest.start_epoch == states[k].epoch + 1  # type: ignore[union-attr]
        np.testing.assert_array_equal(full.loss[rest.start_epoch - 1 :], rest.loss)
        np.testing.assert_array_equal(full_net.theta, rest_net.theta)
    # a population resumed from those states, members at different epochs, ends there too
    nets = [Network([3, 3, 1], rng=np.random.default_rng(k)) for k in range(len(configs))]
    rngs = [np.random.default_rng(100 + k) for k in range(len(configs))]
    resumed = train_population(nets, PARITY.X, PARITY.Y, configs, rngs=rngs, states=states)
    for k, cfg in enumerate(configs):
        full, full_net = _alone(cfg, k)
        np.testing.assert_array_equal(full.loss[resumed[k].start_epoch - 1 :], resumed[k].loss)
        np.testing.assert_array_equal(nets[k].theta, full_net.theta)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"decay": 1.0}, "decay must be in \\[0, 1\\)"),
        ({"decay": -0.002}, "decay must be a finite number >= 0"),
        ({"decay_biases": "yes"}, "decay_biases must be True or False"),
        ({"error_margin": -0.2}, "error_margin must be a finite number >= 0"),
        ({"error_margin": float("nan")}, "error_margin must be a finite number >= 0"),
    ],
)
def test_bad_values_are_refused(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        TrainConfig(**kwargs)
