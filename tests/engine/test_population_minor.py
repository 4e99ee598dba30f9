"""The member-minor layout (engine.minor): where it is chosen, every member still gets
exactly what engine.train gives it alone, and where it is not verified it is not used."""

from __future__ import annotations

import numpy as np
import pytest

from engine import Network, TrainConfig, group_mask, load_dataset, minor, train_population
from engine.minor import MinorStack, fits
from tests.engine.test_population import build, check_population

XOR = load_dataset("xor")


def _configs(K, epochs=400, **kw):
    return [
        TrainConfig(learning_rate=0.5 * (0.5 + 3 * k / K), momentum=0.9, epochs=epochs, **kw)
        for k in range(K)
    ]


def test_xor_population_runs_member_minor_and_matches_single_runs(monkeypatch):
    """XOR 2-2-1 on its 4 patterns qualifies; members solve at different epochs (so the
    population is compacted to ever new sizes, each checked afresh) and all match."""
    made = []
    original = MinorStack.__init__

    def spy(self, *args, **kw):
        made.append(args[1].shape[0])
        original(self, *args, **kw)

    monkeypatch.setattr(MinorStack, "__init__", spy)
    K = 48
    hists = check_population(
        [2, 2, 1], XOR, _configs(K, epochs=600, stop_within=0.3), seeds=list(range(K))
    )
    assert made and made[0] == K  # the member-minor stack trained them
    assert len(set(made)) > 3  # compacted several times, to sizes it verified again
    assert sum(h.outcome == "solved" for h in hists) >= 10
    assert len({h.epochs for h in hists}) > 5


@pytest.mark.parametrize("epoch_metrics", ["exact", "running"])
@pytest.mark.parametrize("optimizer", ["sgd", "nesterov", "adam"])
def test_optimizers_and_epoch_metrics(optimizer, epoch_metrics):
    K = 12
    configs = [
        TrainConfig(
            learning_rate=0.05 * (1 + k) if optimizer == "adam" else 0.3 * (1 + k),
            momentum=0.9,
            epochs=150,
            optimizer=optimizer,
            epoch_metrics=epoch_metrics,
            weight_decay=1e-3 * (k % 3),
        )
        for k in range(K)
    ]
    assert fits(Network([2, 2, 1], rng=np.random.default_rng(0)), K, 4) is not None
    check_population([2, 2, 1], XOR, configs, seeds=list(range(K)))


@pytest.mark.parametrize(
    "net_kw",
    [
        {"cost": "cross_entropy"},
        {"cost": "mse", "activation": "tanh"},
        {"activation": "relu", "output_activation": "sigmoid"},
        {"masks": {0: group_mask([1, 1], [1, 1])}},
    ],
)
def test_costs_activations_masks_and_validation(net_kw):
    K = 10
    check_population(
        [2, 2, 1],
        XOR,
        _configs(K, epochs=120),
        seeds=list(range(K)),
        net_kw=net_kw,
        validation=(XOR.X[::-1], XOR.Y[::-1]),
        checkpoint_every=40,
    )


def test_divergence_and_nan_members_leave_the_others_alone():
    configs = [
        TrainConfig(learning_rate=0.05 * (1 + k), momentum=0.5, epochs=200) for k in range(8)
    ]
    configs[3] = TrainConfig(learning_rate=1e8, momentum=0.9, epochs=200)
    net_kw = {"output_activation": "identity"}  # unbounded outputs can blow up
    assert fits(Network([2, 2, 1], rng=np.random.default_rng(0), **net_kw), 8, 4) is not None
    hists = check_population([2, 2, 1], XOR, configs, seeds=list(range(8)), net_kw=net_kw)
    assert hists[3].outcome == "diverged" and hists[3].epochs < 200
    assert all(h.outcome == "completed" for k, h in enumerate(hists) if k != 3)


@pytest.mark.parametrize(
    "sizes,m,kw",
    [
        ([2, 2, 2], 4, {}),  # two output units: their sums fuse multiply-adds
        ([2, 2, 1], 4, {"skip_connections": True}),
        ([6, 2, 1], 64, {}),  # more patterns than MAX_PATTERNS
    ],
)
def test_not_chosen_where_not_verified(sizes, m, kw):
    assert fits(Network(sizes, rng=np.random.default_rng(0), **kw), 8, m) is None


def test_verified_products_give_np_dot_bits_on_fresh_numbers():
    """Beyond the check's own trial data: the member-minor formulations fits() chose for
    XOR give each member's np.dot bits on new random numbers of the real layouts."""
    K, m, rows, d = 32, 4, 3, 2
    lanes = fits(Network([2, 2, 1], rng=np.random.default_rng(0)), K, m)
    assert lanes is not None
    rng = np.random.default_rng(2024)
    for _ in range(20):
        # output layer: (1, 3) @ (3, 4) per member, a bias row of ones in the inputs
        a = rng.standard_normal((K, rows, m))
        a[:, 0] = 1.0
        w = rng.standard_normal((K, rows, 1))
        dl = rng.standard_normal((K, 1, m))
        out = np.empty((m, 1, K))
        a_mm = np.ascontiguousarray(a.transpose(2, 1, 0))
        minor._forward_sum(
            a_mm, np.ascontiguousarray(w.transpose(1, 2, 0)), np.empty((m, rows, 1, K)), out
        )
        g = np.empty((rows, 1, K))
        prods = a_mm[:, :, None, :] * np.ascontiguousarray(dl.transpose(2, 1, 0))[:, None]
        minor._sum_samples(prods, lanes[1], np.empty((rows, 1, K)), g)
        for k in range(K):
            assert np.array_equal(out[:, :, k].T, np.dot(w[k].T, a[k]))
            assert np.array_equal(g[:, :, k], np.dot(a[k], dl[k].T))
        # layer 0: one GEMM over all members on the shared input
        x = rng.standard_normal((m, rows))
        x[:, 0] = 1.0
        w0 = rng.standard_normal((K, rows, d))
        d0 = rng.standard_normal((K, d, m))
        fwd = np.dot(x, np.ascontiguousarray(w0.transpose(1, 2, 0)).reshape(rows, -1))
        grad = np.dot(x.T, np.ascontiguousarray(d0.transpose(2, 1, 0)).reshape(m, -1))
        for k in range(K):
            assert np.array_equal(fwd.reshape(m, d, K)[:, :, k].T, np.dot(w0[k].T, x.T))
            assert np.array_equal(grad.reshape(rows, d, K)[:, :, k], np.dot(x.T, d0[k].T))


def test_a_large_population_uses_it_from_the_trainer():
    """train_population picks the layout itself: 256 XOR members, a handful checked
    against their single runs (the benchmark's workload)."""
    K = 256
    nets = [build([2, 2, 1], k) for k in range(K)]
    configs = _configs(K, epochs=300)
    hists = train_population([n for n, _ in nets], XOR.X, XOR.Y, configs, rngs=[r for _, r in nets])
    from engine import train

    for k in (0, 77, 255):
        net, rng = build([2, 2, 1], k)
        h = train(net, XOR.X, XOR.Y, configs[k], rng=rng)
        assert np.array_equal(h.loss, hists[k].loss)
        assert np.array_equal(net.theta, nets[k][0].theta)


def test_resume_members_from_states_at_different_epochs():
    """Members resumed from their own checkpoints (each taken alone at another epoch) go on
    member-minor to exactly where they would have got uninterrupted."""
    from engine import TrainState, train

    K = 6
    configs = _configs(K, epochs=90)
    states = []
    for k, take in enumerate((10, None, 40, 20, None, 80)):
        net, rng = build([2, 2, 1], k)
        got: list = []
        train(net, XOR.X, XOR.Y, configs[k], rng=rng, checkpoint_every=10, on_checkpoint=got.append)
        states.append(
            None if take is None else TrainState.from_bytes(got[take // 10 - 1].to_bytes())
        )
    hists = check_population(
        [2, 2, 1], XOR, configs, seeds=list(range(K)), states=states, checkpoint_every=10
    )
    assert [h.start_epoch for h in hists] == [11, 1, 41, 21, 1, 81]
    assert all(h.epochs == 90 for h in hists)


@pytest.mark.parametrize("sizes", [[2, 2, 1], [2, 1]])
def test_one_pattern_full_batch_trains_member_major_and_matches(sizes):
    """A set of one pattern is not member-minor (its sums have one term) and takes the
    member-major products whose inner dimension is 1."""
    from types import SimpleNamespace

    one = SimpleNamespace(X=XOR.X[1:2], Y=XOR.Y[1:2])
    assert fits(Network(sizes, rng=np.random.default_rng(0)), 4, 1) is None
    check_population(sizes, one, _configs(4, epochs=50), seeds=list(range(4)))
