"""Population training gives every member exactly what engine.train gives it alone: every
optimizer, batch schedule, activation, cost, depth, mask, stopping rule and resume."""

from __future__ import annotations

import numpy as np
import pytest

from engine import (
    Network,
    TrainConfig,
    TrainState,
    group_mask,
    load_dataset,
    train,
    train_population,
)
from tests.engine.population_helpers import assert_same_state, build, check_population, same

SYM4 = load_dataset("symmetry:4")
XOR = load_dataset("xor")


@pytest.mark.parametrize("epoch_metrics", ["exact", "running"])
@pytest.mark.parametrize("optimizer", ["sgd", "nesterov", "adam"])
@pytest.mark.parametrize("batch_size", [None, 1, 3])
def test_every_optimizer_and_batch_schedule(optimizer, batch_size, epoch_metrics):
    base = 0.01 if optimizer == "adam" else 0.3
    configs = [
        TrainConfig(
            learning_rate=base * (1 + 0.5 * k),
            momentum=[0.9, 0.5, 0.0, 0.7][k],
            optimizer=optimizer,
            batch_size=batch_size,
            epochs=[30, 25, 30, 12][k],
            weight_decay=[0.0, 0.01, 0.0, 0.001][k],
            schedule=[]
            if k % 2
            else [{"until": 8, "momentum": 0.2}, {"until": 15, "learning_rate": 0.1}],
            epoch_metrics=epoch_metrics,
        )
        for k in range(4)
    ]
    hists = check_population(
        [4, 3, 1],
        SYM4,
        configs,
        seeds=[1, 2, 3, 4],
        net_kw={"skip_connections": True},
        checkpoint_every=7,
    )
    assert [h.epochs for h in hists] == [30, 25, 30, 12]


def _kw(activation, output, cost, skip=False):
    return {
        "activation": activation,
        "output_activation": output,
        "cost": cost,
        "skip_connections": skip,
    }


@pytest.mark.parametrize(
    "net_kw,data_name,sizes,cost_kw",
    [
        (_kw("tanh", "softmax", "cross_entropy"), "encoder:4", [4, 2, 4], {}),
        (_kw("relu", "identity", "mse"), "addition:2", [4, 5, 3], {}),
        (_kw("sigmoid", "softmax", "sse"), "encoder:4", [4, 3, 2, 4], {}),
        (_kw("identity", "sigmoid", "cross_entropy", True), "parity:3", [3, 2, 2, 1], {}),
        (_kw("tanh", "identity", "cross_entropy"), "xor", [2, 3, 1], {}),
    ],
)
@pytest.mark.parametrize("epoch_metrics", ["exact", "running"])
@pytest.mark.parametrize("batch_size", [None, 2])
def test_activations_costs_depths(net_kw, data_name, sizes, cost_kw, batch_size, epoch_metrics):
    data = load_dataset(data_name)
    configs = [
        TrainConfig(
            learning_rate=lr,
            momentum=0.9,
            batch_size=batch_size,
            epochs=40,
            epoch_metrics=epoch_metrics,
        )
        for lr in (0.05, 0.2, 0.5)
    ]
    check_population(sizes, data, configs, seeds=[7, 8, 9], net_kw=net_kw)


def test_masks_and_validation():
    data = load_dataset("parity:4")
    mask = group_mask([2, 2], [2, 2])
    val = load_dataset("parity:4")
    validation = (val.X[:6], val.Y[:6])
    configs = [TrainConfig(learning_rate=lr, momentum=0.5, epochs=50) for lr in (0.1, 0.4, 1.0)]
    check_population(
        [4, 4, 1],
        data,
        configs,
        seeds=[0, 1, 2],
        net_kw={"masks": {0: mask}},
        validation=validation,
    )
    configs = [TrainConfig(learning_rate=0.3, batch_size=5, epochs=20, optimizer="adam")] * 2
    check_population([4, 4, 1], data, configs, seeds=[3, 4], net_kw={"masks": {0: mask}})


def test_members_solve_diverge_stop_at_different_epochs():
    data = load_dataset("parity:3")
    configs = [
        TrainConfig(
            learning_rate=0.1, momentum=0.9, epochs=3000, stop_within=0.4, stop_on_solve=True
        ),
        TrainConfig(learning_rate=1e6, momentum=0.9, epochs=3000),  # diverges at once
        TrainConfig(learning_rate=0.1, momentum=0.9, epochs=3000, stop_loss=0.3),
        TrainConfig(learning_rate=0.1, momentum=0.9, epochs=3000),  # stopped by its callback
        TrainConfig(
            learning_rate=0.1, momentum=0.9, epochs=3000, stop_within=0.4, stop_on_solve=False
        ),
        TrainConfig(learning_rate=0.2, momentum=0.0, epochs=77),
    ]
    hists = check_population(
        [3, 4, 1],
        data,
        configs,
        seeds=[0, 1, 2, 3, 4, 5],
        net_kw={"activation": "tanh", "output_activation": "identity"},
        stop_at={3: 123},
        checkpoint_every=100,
    )
    outcomes = [h.outcome for h in hists]
    assert outcomes[1] == "diverged" and outcomes[3] == "stopped" and outcomes[5] == "completed"
    assert hists[1].epochs < 50 and hists[3].epochs == 123 and hists[5].epochs == 77
    assert outcomes[0] == "solved" and outcomes[2] == "stop_loss"
    assert outcomes[4] == "completed" and hists[4].solved_epoch is not None  # solved, went on
    assert len({h.epochs for h in hists}) >= 4  # they really stopped at different epochs


def test_xor_sweep_many_members_with_solve():
    configs = [
        TrainConfig(
            learning_rate=lr, momentum=mom, epochs=1500, stop_within=0.4, stop_on_solve=True
        )
        for lr in (0.1, 0.5, 1.0, 2.0)
        for mom in (0.0, 0.9)
    ]
    hists = check_population([2, 2, 1], XOR, configs, seeds=list(range(len(configs))))
    assert sum(h.outcome == "solved" for h in hists) >= 3


def test_resume_population_from_member_states_at_different_epochs():
    cfgs = [
        TrainConfig(learning_rate=0.3, momentum=0.9, batch_size=3, epochs=40, optimizer=opt_)
        for opt_ in ("adam",) * 3
    ]
    # checkpoints of each member alone, taken at different epochs
    states: list[TrainState | None] = []
    for k, take in enumerate((10, None, 25)):
        net, rng = build([4, 3, 1], k)
        got: list[TrainState] = []
        train(net, SYM4.X, SYM4.Y, cfgs[k], rng=rng, checkpoint_every=5, on_checkpoint=got.append)
        states.append(
            None if take is None else TrainState.from_bytes(got[take // 5 - 1].to_bytes())
        )
    hists = check_population(
        [4, 3, 1], SYM4, cfgs, seeds=[0, 1, 2], states=states, checkpoint_every=5
    )
    assert [h.start_epoch for h in hists] == [11, 1, 26]
    assert all(h.epochs == 40 for h in hists)

    # and the resumed population ends where the uninterrupted population ends
    built = [build([4, 3, 1], k) for k in range(3)]
    full = train_population([b[0] for b in built], SYM4.X, SYM4.Y, cfgs, rngs=[b[1] for b in built])
    for h_full, h_rest in zip(full, hists, strict=True):
        assert_same_state(h_full.state, h_rest.state)
        assert same(h_full.loss[h_rest.start_epoch - 1 :], h_rest.loss)


def test_large_set_is_scored_in_chunks():
    rng = np.random.default_rng(0)
    X = rng.uniform(-1, 1, size=(4100, 3))
    Y = (X.sum(axis=1, keepdims=True) > 0).astype(float)

    class D:
        pass

    data = D()
    data.X, data.Y = X, Y
    cfgs = [
        TrainConfig(learning_rate=lr, momentum=0.9, batch_size=1000, epochs=3) for lr in (0.01, 0.1)
    ]
    check_population([3, 2, 1], data, cfgs, seeds=[0, 1], net_kw={"cost": "mse"})


@pytest.mark.parametrize("batch_size", [None, 2])
def test_every_member_scheduled_runs_past_the_last_phase(batch_size):
    """Issue 20 item 5: with a schedule on *every* member, the epoch through which a
    member's values hold became infinite past its last phase and did not fit the integer
    array it was kept in (OverflowError). The other schedule tests mixed scheduled and
    unscheduled members, whose infinity made that array float."""
    configs = [
        TrainConfig(
            learning_rate=0.5,
            momentum=0.9,
            epochs=20,
            batch_size=batch_size,
            schedule=[{"until": 5, "learning_rate": 0.1}],
        ),
        TrainConfig(
            learning_rate=0.3,
            momentum=0.5,
            epochs=25,
            batch_size=batch_size,
            schedule=[{"until": 3, "momentum": 0.1}, {"until": 9, "learning_rate": 0.7}],
        ),
    ]
    hists = check_population([2, 2, 1], XOR, configs, seeds=[0, 1], checkpoint_every=4)
    assert [h.epochs for h in hists] == [20, 25]
    assert all(h.outcome == "completed" for h in hists)


def test_the_issue_20_reproduction():
    cfg = TrainConfig(
        learning_rate=0.5, momentum=0.9, epochs=20, schedule=[{"until": 5, "learning_rate": 0.1}]
    )
    nets = [Network([2, 2, 1], rng=np.random.default_rng(k)) for k in range(2)]
    rngs = [np.random.default_rng(k) for k in range(2)]
    hists = train_population(nets, XOR.X, XOR.Y, [cfg] * 2, rngs=rngs)
    assert [h.epochs for h in hists] == [20, 20]
