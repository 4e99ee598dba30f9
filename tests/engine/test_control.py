"""The per-epoch control (engine.control): the rule, its precedence, and a population's
screened decisions equal to the single net's, member by member."""

from __future__ import annotations

import math

import numpy as np
import pytest

from engine import TrainConfig
from engine.control import (
    COMPLETED,
    DIVERGED,
    GO_ON,
    SOLVED,
    STOP_LOSS,
    STOPPED,
    Control,
    One,
    Phases,
    Rule,
    phase,
)


def test_rule_precedence():
    rule = Rule(epochs=10, stop_within=0.5, stop_loss=1.0, stop_on_solve=True)
    # not finite: diverged, whatever else holds, and nothing is marked solved
    assert rule.judge(3, 0.1, 0.1, False, None) == (DIVERGED, None)
    assert rule.judge(3, 0.1, 0.1, True, None) == (SOLVED, 3)  # solved beats stop_loss
    assert rule.judge(3, 0.1, 0.6, True, None) == (STOP_LOSS, None)
    assert rule.judge(3, 2.0, 0.6, True, None) == (GO_ON, None)
    # solved before: never solved again, the epoch stays the first one
    assert rule.judge(7, 2.0, 0.1, True, 3) == (GO_ON, 3)
    going_on = Rule(epochs=10, stop_within=0.5, stop_loss=1.0, stop_on_solve=False)
    assert going_on.judge(4, 2.0, 0.1, True, None) == (GO_ON, 4)
    assert going_on.judge(4, 0.5, 0.1, True, None) == (STOP_LOSS, 4)
    # max_error equal to stop_within is not within it, nor a loss equal to stop_loss below
    assert rule.judge(3, 1.0, 0.5, True, None) == (GO_ON, None)


def test_one_stop_requests_checkpoints_and_the_last_epoch():
    cfg = TrainConfig(epochs=6, stop_within=0.5, stop_on_solve=True)
    theta = np.zeros(3)
    one = One(cfg, math.inf, None, checkpoint_every=2)
    assert one.after_epoch(1, 3.0, 0.9, theta, False) == (GO_ON, False)
    assert one.after_epoch(2, 2.0, 0.9, theta, False) == (GO_ON, True)
    assert one.best == 2.0
    assert one.after_epoch(3, 2.5, 0.9, theta, False) == (GO_ON, False)
    assert one.best == 2.0
    # the last epoch completes and still gets its checkpoint
    assert one.after_epoch(6, 1.0, 0.9, theta, False) == (COMPLETED, True)
    # a stop request: "stopped", no checkpoint; but the metrics' own outcome comes first
    assert One(cfg, math.inf, None, 2).after_epoch(2, 1.0, 0.9, theta, True) == (STOPPED, False)
    solved = One(cfg, math.inf, None, 2)
    assert solved.after_epoch(2, 1.0, 0.1, theta, True) == (SOLVED, False)
    assert solved.solved == 2
    # a weight sum that overflows is divergence, and the loss is not taken as the best
    huge = np.full(3, 1e308)
    diverged = One(cfg, math.inf, None, None)
    with np.errstate(over="ignore"):
        assert diverged.after_epoch(1, 1.0, 0.9, huge, False) == (DIVERGED, False)
    assert diverged.best == math.inf


def test_population_decisions_equal_each_member_alone():
    """Random metric sequences (with NaN, infinities and overflowing weights): the screened
    whole-array decisions of Control give every member what One gives it alone."""
    rng = np.random.default_rng(7)
    K, P = 40, 5
    configs = [
        TrainConfig(
            epochs=int(rng.integers(5, 30)),
            stop_within=[None, 0.05, 0.2][k % 3],
            stop_loss=[None, 0.02][k % 2],
            stop_on_solve=bool(k % 4),
        )
        for k in range(K)
    ]
    first = rng.integers(1, 4, K)
    solved0 = np.where(rng.random(K) < 0.2, 0, -1)
    singles = [
        One(c, math.inf, None if s < 0 else 0, 3) for c, s in zip(configs, solved0, strict=True)
    ]
    members = np.arange(K)
    ctl = Control(configs, members, first.copy(), np.full(K, math.inf), solved0.copy(), 3)
    done: dict[int, tuple[int, int]] = {}
    while len(ctl.members):
        k_rows = ctl.members
        epochs = ctl.epochs()
        n = len(k_rows)
        loss = rng.exponential(0.5, n)
        loss[rng.random(n) < 0.03] = math.nan
        max_err = rng.random(n)
        theta = rng.standard_normal((n, P))
        theta[rng.random(n) < 0.02, 0] = math.inf
        stop = np.flatnonzero(rng.random(n) < 0.03).tolist()
        outcome, due = ctl.after_epoch(epochs, loss, max_err, theta, stop)
        for r, k in enumerate(k_rows.tolist()):
            code, single_due = singles[k].after_epoch(
                int(epochs[r]), float(loss[r]), float(max_err[r]), theta[r], r in stop
            )
            assert (0 if outcome is None else int(outcome[r])) == code, (k, int(epochs[r]))
            assert (r in due) == single_due
            assert singles[k].best == ctl.best[r]
            assert (-1 if singles[k].solved is None else singles[k].solved) == ctl.solved[r]
            if code:
                done[k] = (code, int(epochs[r]))
        if outcome is not None and outcome.any():
            ctl.keep(np.flatnonzero(outcome == 0))
    assert len(done) == K
    codes = {c for c, _ in done.values()}
    assert {COMPLETED, DIVERGED, STOPPED, SOLVED, STOP_LOSS} <= codes  # every path reached


def test_every_member_scheduled_past_its_last_phase():
    """Issue 20 item 5 at its root: with every member scheduled the epoch through which
    the values hold was kept in an integer array, and infinity did not fit in it."""
    configs = [
        TrainConfig(learning_rate=0.5, momentum=0.9, schedule=[{"until": 5, "learning_rate": 0.1}]),
        TrainConfig(
            learning_rate=0.3, momentum=0.0, schedule=[{"until": 2, "momentum": 0.5}, {"until": 4}]
        ),
    ]
    phases = Phases(configs)
    seen = []
    for epoch in range(1, 9):
        phases.changes(np.array([epoch, epoch]))
        seen.append((phases.lr.tolist(), phases.mom.tolist()))
    assert seen[0] == ([0.1, 0.3], [0.9, 0.5])
    assert seen[2] == ([0.1, 0.3], [0.9, 0.0])
    assert seen[7] == ([0.5, 0.3], [0.9, 0.0])
    assert np.isinf(phases.valid).all()
    assert phase(configs[0], 5) == (0.1, 0.9, 5.0)
    assert phase(configs[0], 6) == (0.5, 0.9, math.inf)


@pytest.mark.parametrize("every", [None, 1, 4])
def test_checkpoints_only_for_members_that_go_on(every):
    cfgs = [TrainConfig(epochs=8), TrainConfig(epochs=4, stop_loss=0.5)]
    ctl = Control(
        cfgs, np.arange(2), np.ones(2, np.int64), np.full(2, math.inf), np.full(2, -1), every
    )
    theta = np.zeros((2, 3))
    dues = []
    for _ in range(4):
        outcome, due = ctl.after_epoch(ctl.epochs(), np.array([1.0, 1.0]), np.ones(2), theta, [])
        dues.append(due)
    assert outcome is not None and outcome.tolist() == [GO_ON, COMPLETED]
    if every is None:
        assert dues == [[], [], [], []]
    elif every == 1:
        assert dues == [[0, 1]] * 4  # the last epoch of member 1 included
    else:
        assert dues == [[], [], [], [0, 1]]
