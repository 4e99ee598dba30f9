"""train_population's callbacks (on_epochs stopping members, on_finish) and what it refuses:
members of different shapes or settings, states that do not fit, NaN or infinite data."""

from __future__ import annotations

import math

import numpy as np
import pytest

from engine import TrainConfig, group_mask, load_dataset, train, train_population
from tests.engine.population_helpers import assert_same_history, build

XOR = load_dataset("xor")


def test_member_already_finished_and_state_mismatch():
    net, rng = build([2, 2, 1], 0)
    cfg = TrainConfig(learning_rate=0.5, epochs=5)
    h = train(net, XOR.X, XOR.Y, cfg, rng=rng)
    built = [build([2, 2, 1], k) for k in range(2)]
    hists = train_population(
        [b[0] for b in built],
        XOR.X,
        XOR.Y,
        [cfg, cfg],
        rngs=[b[1] for b in built],
        states=[h.state, None],
    )
    assert hists[0].epochs == 5 and len(hists[0].loss) == 0 and hists[0].outcome == "completed"
    assert hists[1].epochs == 5 and len(hists[1].loss) == 5
    adam = TrainConfig(learning_rate=0.5, epochs=9, optimizer="adam")
    with pytest.raises(ValueError, match="optimizer"):
        train_population([built[0][0]], XOR.X, XOR.Y, [adam], rngs=[built[0][1]], states=[h.state])


def test_on_epochs_vector_callback_stops_members():
    built = [build([2, 2, 1], k) for k in range(4)]
    cfgs = [TrainConfig(learning_rate=0.5, momentum=0.9, epochs=100)] * 4
    calls = []

    def on_epochs(members, epochs, metrics):
        calls.append((members.tolist(), epochs.tolist()))
        assert metrics["loss"].shape == members.shape
        return [2] if epochs[0] == 30 else None

    finished = []

    def on_finish(k, history):
        finished.append((k, history.epochs, built[k][0].theta.copy()))

    hists = train_population(
        [b[0] for b in built],
        XOR.X,
        XOR.Y,
        cfgs,
        rngs=[b[1] for b in built],
        on_epochs=on_epochs,
        on_finish=on_finish,
    )
    assert [h.outcome for h in hists] == ["completed", "completed", "stopped", "completed"]
    # member 2 reported as soon as it stopped, with its final weights in its net
    assert [(k, e) for k, e, _ in finished] == [(2, 30), (0, 100), (1, 100), (3, 100)]
    assert all(np.array_equal(theta, built[k][0].theta) for k, _, theta in finished)
    assert hists[2].epochs == 30 and calls[30] == ([0, 1, 3], [31, 31, 31])
    # the others are untouched by member 2 leaving
    net, rng = build([2, 2, 1], 3)
    h = train(net, XOR.X, XOR.Y, cfgs[3], rng=rng)
    assert_same_history(h, hists[3])


def test_members_must_share_shape_optimizer_and_batch():
    a, ra = build([2, 2, 1], 0)
    b, rb = build([2, 3, 1], 1)
    cfg = TrainConfig(learning_rate=0.5, epochs=3)
    with pytest.raises(ValueError, match="shape"):
        train_population([a, b], XOR.X, XOR.Y, [cfg, cfg], rngs=[ra, rb])
    c, rc = build([2, 2, 1], 2)
    with pytest.raises(ValueError, match="share optimizer, batch_size and epoch_metrics"):
        train_population(
            [a, c], XOR.X, XOR.Y, [cfg, TrainConfig(learning_rate=0.5, batch_size=2)], rngs=[ra, rc]
        )
    running = TrainConfig(learning_rate=0.5, epochs=3, epoch_metrics="running")
    with pytest.raises(ValueError, match=r"\(sgd, None, exact\); got \(sgd, None, running\)"):
        train_population([a, c], XOR.X, XOR.Y, [cfg, running], rngs=[ra, rc])
    with pytest.raises(ValueError, match="one entry per member"):
        train_population([a, c], XOR.X, XOR.Y, [cfg], rngs=[ra, rc])
    m = group_mask([1, 1], [1, 1])
    d, rd = build([2, 2, 1], 3, masks={0: m})
    with pytest.raises(ValueError, match="shape"):
        train_population([a, d], XOR.X, XOR.Y, [cfg, cfg], rngs=[ra, rd])


@pytest.mark.parametrize("where", ["X", "Y", "validation X", "validation Y"])
@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_nan_or_infinite_data_is_refused(where, bad):
    X, Y = XOR.X.copy(), XOR.Y.copy()
    Xv, Yv = XOR.X.copy(), XOR.Y.copy()
    {"X": X, "Y": Y, "validation X": Xv, "validation Y": Yv}[where][2, 0] = bad
    cfg = TrainConfig(learning_rate=0.5, epochs=3)
    message = rf"^{where} has 1 NaN or infinite value\(s\), the first at row 2, column 0"
    net, rng = build([2, 2, 1], 0)
    before = net.theta.copy()
    with pytest.raises(ValueError, match=message):
        train(net, X, Y, cfg, rng=rng, validation=(Xv, Yv))
    with pytest.raises(ValueError, match=message):
        train_population([net], X, Y, [cfg], rngs=[rng], validation=(Xv, Yv))
    assert np.array_equal(net.theta, before)  # refused before any update


def test_on_epochs_stops_a_single_net_as_a_population_of_one():
    """train()'s on_epochs sees the net as member 0 of a population of one, with the same
    arrays train_population gives, and stops it as train_population stops a member."""
    cfg = TrainConfig(learning_rate=0.5, momentum=0.9, epochs=100)
    seen = []

    def on_epochs(members, epochs, metrics):
        seen.append((members.tolist(), epochs.tolist(), metrics["loss"].shape))
        return [0] if epochs[0] == 30 else []

    net, rng = build([2, 2, 1], 0)
    h = train(net, XOR.X, XOR.Y, cfg, rng=rng, on_epochs=on_epochs)
    assert h.outcome == "stopped" and h.epochs == 30 and len(seen) == 30
    assert seen[0] == ([0], [1], (1,)) and seen[-1] == ([0], [30], (1,))
    pnet, prng = build([2, 2, 1], 0)
    (hp,) = train_population([pnet], XOR.X, XOR.Y, [cfg], rngs=[prng], on_epochs=on_epochs)
    assert_same_history(h, hp)
    # a request for another member's index does not stop the single net
    net, rng = build([2, 2, 1], 0)
    h = train(net, XOR.X, XOR.Y, cfg, rng=rng, on_epochs=lambda m, e, x: [1])
    assert h.outcome == "completed" and h.epochs == 100
