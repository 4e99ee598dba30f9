"""What the population tests share: training each member alone and all together, and
asserting that both give the same numbers, bit for bit (tests/engine/test_population*.py and
test_patience.py use it)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from engine import Network, StopTraining, TrainState, train, train_population


def same(a, b) -> bool:
    """Equal arrays (or None), NaN equal to NaN: the same numbers, bit for bit in value."""
    if a is None or b is None:
        return a is None and b is None
    a, b = np.asarray(a), np.asarray(b)
    return a.shape == b.shape and np.array_equal(a, b, equal_nan=True)


def same_float(a, b) -> bool:
    return a == b or (math.isnan(a) and math.isnan(b))


def assert_same_state(s1: TrainState, s2: TrainState) -> None:
    assert s1.epoch == s2.epoch and s1.optimizer == s2.optimizer
    assert s1.solved_epoch == s2.solved_epoch and same_float(s1.best_loss, s2.best_loss)
    assert len(s1.params) == len(s2.params)
    for p1, p2 in zip(s1.params, s2.params, strict=True):
        assert same(p1, p2)
    assert s1.buffers.keys() == s2.buffers.keys()
    for key in s1.buffers:
        assert same(s1.buffers[key], s2.buffers[key]), key
    assert s1.rng_state == s2.rng_state
    # early stopping (engine.patience): the figures a resumed run decides from
    assert (s1.wait, s1.best_epoch) == (s2.wait, s2.best_epoch)
    assert same_float(s1.monitor_best, s2.monitor_best)
    assert same(s1.best_theta, s2.best_theta) and s1.best_metrics == s2.best_metrics


def assert_same_history(h1, h2) -> None:
    assert (h1.start_epoch, h1.epochs, h1.outcome) == (h2.start_epoch, h2.epochs, h2.outcome)
    assert h1.solved_epoch == h2.solved_epoch
    assert same_float(h1.best_loss, h2.best_loss)
    assert (h1.best_epoch, h1.restored_best) == (h2.best_epoch, h2.restored_best)
    assert h1.best_metrics == h2.best_metrics
    for name in ("loss", "max_error", "accuracy", "val_loss", "val_accuracy"):
        assert same(getattr(h1, name), getattr(h2, name)), name
    assert_same_state(h1.state, h2.state)


def build(sizes, seed, **net_kw):
    rng = np.random.default_rng(seed)
    return Network(sizes, rng=rng, **net_kw), rng


@dataclass
class Member:
    """One member's training: its net and generator afterwards, what its callbacks got."""

    net: Network
    rng: np.random.Generator
    seen: list = field(default_factory=list)  # (epoch, metrics) of each on_epoch call
    checkpoints: list[TrainState] = field(default_factory=list)


def check_population(
    sizes,
    data,
    configs,
    seeds,
    *,
    net_kw=None,
    validation=None,
    stop_at=None,
    checkpoint_every=None,
    states=None,
):
    """Train each member alone and all together; assert identical results; return histories.

    ``stop_at``: {member: epoch} raises StopTraining from that member's callback.
    """
    net_kw = net_kw or {}
    stop_at = stop_at or {}
    common = {"validation": validation, "checkpoint_every": checkpoint_every}
    singles = [
        _train_alone(
            Member(*build(sizes, seed, **net_kw)),
            data,
            cfg,
            stop=stop_at.get(k),
            state=None if states is None else states[k],
            **common,
        )
        for k, (cfg, seed) in enumerate(zip(configs, seeds, strict=True))
    ]
    members = [Member(*build(sizes, seed, **net_kw)) for seed in seeds]
    hists = _train_together(members, data, configs, stop_at=stop_at, states=states, **common)
    assert len(hists) == len(configs)
    for k, ((single, h), hp) in enumerate(zip(singles, hists, strict=True)):
        assert_same_history(h, hp)
        _assert_same_member(k, single, members[k])
    return hists


def _train_alone(member: Member, data, cfg, *, stop, validation, state, checkpoint_every):
    """(member, history) of engine.train on the member alone."""

    def cb(epoch, metrics):
        member.seen.append((epoch, metrics))
        if stop == epoch:
            raise StopTraining()

    h = train(
        member.net,
        data.X,
        data.Y,
        cfg,
        rng=member.rng,
        on_epoch=cb,
        validation=validation,
        state=state,
        checkpoint_every=checkpoint_every,
        on_checkpoint=member.checkpoints.append,
    )
    return member, h


def _train_together(members: list[Member], data, configs, *, stop_at, **kw):
    """train_population's histories of the members, their callbacks recorded in them."""

    def pop_cb(k, epoch, metrics):
        members[k].seen.append((epoch, metrics))
        if stop_at.get(k) == epoch:
            raise StopTraining()

    return train_population(
        [m.net for m in members],
        data.X,
        data.Y,
        configs,
        rngs=[m.rng for m in members],
        on_epoch=pop_cb,
        on_checkpoint=lambda k, s: members[k].checkpoints.append(s),
        **kw,
    )


def _assert_same_member(k: int, single: Member, member: Member) -> None:
    assert same(single.net.theta, member.net.theta), f"member {k} weights"
    assert member.rng.bit_generator.state == single.rng.bit_generator.state
    assert len(single.seen) == len(member.seen)
    for (e1, m1), (e2, m2) in zip(single.seen, member.seen, strict=True):
        assert e1 == e2 and m1.keys() == m2.keys()
        for key in m1:
            v1, v2 = m1[key], m2[key]
            assert (v1 is None and v2 is None) or same_float(v1, v2), (k, e1, key)
    assert [s.epoch for s in single.checkpoints] == [s.epoch for s in member.checkpoints]
    for s1, s2 in zip(single.checkpoints, member.checkpoints, strict=True):
        assert_same_state(s1, s2)
