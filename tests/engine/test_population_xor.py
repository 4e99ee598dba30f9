"""XOR-sized populations (tiny nets, few patterns, many members): every member gets exactly
what engine.train gives it alone, through compaction, every optimizer, cost and resume.

(These tests first held the member-minor layout, engine.minor, which was removed: on the
XOR population benchmark it bought less than the 1.3x over member-major that would have
paid for a second numerical core.)"""

from __future__ import annotations

import numpy as np
import pytest

from engine import TrainConfig, group_mask, load_dataset, train_population
from tests.engine.population_helpers import build, check_population

XOR = load_dataset("xor")


def _configs(K, epochs=400, **kw):
    return [
        TrainConfig(learning_rate=0.5 * (0.5 + 3 * k / K), momentum=0.9, epochs=epochs, **kw)
        for k in range(K)
    ]


def test_xor_population_compacted_many_times_matches_single_runs():
    """Members solve at different epochs, so the population is compacted to ever new
    sizes (whose shared-input products are verified afresh), and all match."""
    K = 48
    hists = check_population(
        [2, 2, 1],
        XOR,
        _configs(K, epochs=600, stop_within=0.3, stop_on_solve=True),
        seeds=list(range(K)),
    )
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
    hists = check_population([2, 2, 1], XOR, configs, seeds=list(range(8)), net_kw=net_kw)
    assert hists[3].outcome == "diverged" and hists[3].epochs < 200
    assert all(h.outcome == "completed" for k, h in enumerate(hists) if k != 3)


def test_a_large_population_matches_single_runs():
    """256 XOR members (the benchmark's workload), a handful checked against their single
    runs."""
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
    to exactly where they would have got uninterrupted."""
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


def test_checkpoints_of_members_resumed_out_of_step():
    """Members resumed at epochs that differ modulo checkpoint_every get their checkpoints
    at their own epochs, each as the member alone gets them (the control skips the test on
    an epoch that is no member's checkpoint epoch)."""
    from engine import TrainState, train

    K = 4
    configs = _configs(K, epochs=60)
    states = []
    for k, take in enumerate((3, None, 7, 12)):
        net, rng = build([2, 2, 1], k)
        got: list = []
        train(net, XOR.X, XOR.Y, configs[k], rng=rng, checkpoint_every=1, on_checkpoint=got.append)
        states.append(None if take is None else TrainState.from_bytes(got[take - 1].to_bytes()))
    ckpts: list[list[int]] = [[] for _ in range(K)]
    built = [build([2, 2, 1], k) for k in range(K)]
    train_population(
        [b[0] for b in built],
        XOR.X,
        XOR.Y,
        configs,
        rngs=[b[1] for b in built],
        states=states,
        checkpoint_every=5,
        on_checkpoint=lambda k, s: ckpts[k].append(s.epoch),
    )
    assert ckpts == [list(range(first, 61, 5)) for first in (5, 5, 10, 15)]
    check_population(
        [2, 2, 1], XOR, configs, seeds=list(range(K)), states=states, checkpoint_every=5
    )


@pytest.mark.parametrize("sizes", [[2, 2, 1], [2, 1]])
def test_one_pattern_full_batch_matches(sizes):
    """A set of one pattern takes the products whose inner dimension is 1 (outer products,
    computed as broadcast multiplies)."""
    from types import SimpleNamespace

    one = SimpleNamespace(X=XOR.X[1:2], Y=XOR.Y[1:2])
    check_population(sizes, one, _configs(4, epochs=50), seeds=list(range(4)))
