"""Per-run early stopping (patience, min_delta, restore_best) in engine.train and
engine.train_population: Keras's semantics, population members bit-identical to their lone
runs, restored weights equal to a run trained exactly to the best epoch, resume across a
checkpoint taken mid-patience, and states saved before these fields existed."""

from __future__ import annotations

import io
import math

import numpy as np
import pytest

from engine import Network, TrainConfig, TrainState, load_dataset, train, train_population
from tests.engine.population_helpers import (
    assert_same_history,
    assert_same_state,
    check_population,
    same,
)

XOR = load_dataset("xor")


def _noisy_curve() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """A noisy 1-D regression a 2-12-1 net overfits: val_loss falls, then rises (best epoch
    ~30-40 at learning rate 0.3)."""
    rng = np.random.default_rng(5)
    X = rng.uniform(-1, 1, (24, 2))
    Y = np.sin(3 * X[:, :1]) * 0.4 + 0.5 + rng.normal(0, 0.1, (24, 1))
    return X[:16], Y[:16], X[16:], Y[16:]


X_TR, Y_TR, X_VA, Y_VA = _noisy_curve()


def _train(seed: int, config: TrainConfig, sizes=(2, 12, 1), validation=True, **kw):
    rng = np.random.default_rng(seed)
    net = Network(list(sizes), rng=rng)
    val = (X_VA, Y_VA) if validation else None
    history = train(net, X_TR, Y_TR, config, rng=rng, validation=val, **kw)
    return net, history


def _keras_stop(values: np.ndarray, patience: int, min_delta: float) -> tuple[int, int | None]:
    """(best epoch, stop epoch or None) by Keras's EarlyStopping rule, written out plainly."""
    best, best_epoch, wait = math.inf, 0, 0
    for epoch, value in enumerate(values.tolist(), start=1):
        wait += 1
        if best - value > min_delta:  # lower than the best by more than min_delta
            best, best_epoch, wait = value, epoch, 0
        if wait >= patience:
            return best_epoch, epoch
    return best_epoch, None


def test_patience_stops_where_keras_would_on_val_loss_and_rows_match_the_full_run():
    config = TrainConfig(learning_rate=0.3, epochs=400, patience=20)
    _, full = _train(0, TrainConfig(learning_rate=0.3, epochs=400))
    _, stopped = _train(0, config)
    best_epoch, stop = _keras_stop(full.val_loss, 20, 0.0)
    assert stop is not None and stop < 400
    assert (stopped.outcome, stopped.epochs, stopped.best_epoch) == ("patience", stop, best_epoch)
    assert stopped.epochs == stopped.best_epoch + 20
    # the rows up to the stop are the uninterrupted run's, bit for bit
    for name in ("loss", "max_error", "val_loss"):
        assert same(getattr(stopped, name), getattr(full, name)[:stop]), name
    assert not stopped.restored_best and stopped.best_metrics is None


def test_min_delta_on_the_training_loss_without_a_validation_set():
    plain = TrainConfig(learning_rate=0.3, epochs=300)
    _, full = _train(1, plain, validation=False)
    for min_delta in (0.0, 1e-3, 1e-2):
        config = TrainConfig(learning_rate=0.3, epochs=300, patience=5, min_delta=min_delta)
        _, h = _train(1, config, validation=False)
        best_epoch, stop = _keras_stop(full.loss, 5, min_delta)
        assert h.best_epoch == best_epoch
        assert (h.outcome, h.epochs) == (("patience", stop) if stop else ("completed", 300))
    # a larger min_delta stops no later
    stops = []
    for min_delta in (1e-4, 1e-2):
        config = TrainConfig(learning_rate=0.3, epochs=300, patience=5, min_delta=min_delta)
        stops.append(_train(1, config, validation=False)[1].epochs)
    assert stops[1] <= stops[0]


@pytest.mark.parametrize("patience", [15, 0])
def test_restore_best_keeps_the_weights_of_a_run_trained_exactly_to_the_best_epoch(patience):
    config = TrainConfig(learning_rate=0.3, epochs=200, patience=patience, restore_best=True)
    net, h = _train(2, config)
    assert h.restored_best and h.best_epoch is not None and h.best_epoch < h.epochs
    assert h.outcome == ("patience" if patience else "completed")
    to_best, h_best = _train(2, TrainConfig(learning_rate=0.3, epochs=h.best_epoch))
    assert same(net.theta, to_best.theta)
    assert h.best_metrics == h_best.metrics(h.best_epoch)
    assert h.best_metrics["val_loss"] == float(np.min(h.val_loss))
    # the state is still the last epoch's: the one to resume from
    last = Network([2, 12, 1], rng=np.random.default_rng(0))
    last.set_params(h.state.params)
    assert not same(last.theta, net.theta)


def test_restore_best_does_not_apply_to_a_diverged_run():
    data = load_dataset("parity:3")
    config = TrainConfig(learning_rate=1e6, momentum=0.9, epochs=500, restore_best=True)
    rng = np.random.default_rng(0)
    net = Network([3, 4, 1], rng=rng, activation="relu", output_activation="identity")
    h = train(net, data.X, data.Y, config, rng=rng)
    assert h.outcome == "diverged" and not h.restored_best and h.best_epoch is not None
    last = Network([3, 4, 1], rng=rng, activation="relu", output_activation="identity")
    last.set_params(h.state.params)
    assert same(net.theta, last.theta)  # what diverged, not the best epoch's


def _population_configs() -> list[TrainConfig]:
    return [
        TrainConfig(learning_rate=0.3, epochs=150, patience=10, restore_best=True),
        TrainConfig(learning_rate=0.3, epochs=150),  # untracked: runs to the end
        TrainConfig(learning_rate=0.25, epochs=150, patience=25, min_delta=1e-4),
        TrainConfig(learning_rate=0.35, epochs=120, restore_best=True),
        TrainConfig(learning_rate=0.3, epochs=150, patience=40, restore_best=True),
    ]


@pytest.mark.parametrize("batch_size", [None, 4])
def test_population_members_stop_one_by_one_bit_identical_to_their_lone_runs(batch_size):
    configs = [
        TrainConfig(**{**c.__dict__, "batch_size": batch_size}) for c in _population_configs()
    ]
    hists = check_population(
        [2, 12, 1],
        _Data(X_TR, Y_TR),
        configs,
        seeds=[2, 2, 3, 4, 2],
        validation=(X_VA, Y_VA),
        checkpoint_every=7,
    )
    outcomes = [h.outcome for h in hists]
    assert outcomes[1] == "completed" and hists[1].epochs == 150
    assert outcomes[0] == "patience" and outcomes[4] == "patience"
    assert hists[0].epochs < hists[4].epochs  # one stopped, the others went on
    assert hists[0].restored_best and hists[3].restored_best and not hists[2].restored_best
    assert hists[1].best_epoch is None


class _Data:
    def __init__(self, X: np.ndarray, Y: np.ndarray) -> None:
        self.X, self.Y = X, Y


def _checkpoints(seed: int, config: TrainConfig, every: int) -> tuple[Network, object, list]:
    saved: list[TrainState] = []
    net, h = _train(seed, config, checkpoint_every=every, on_checkpoint=saved.append)
    return net, h, saved


def test_resume_from_a_checkpoint_taken_mid_patience_is_bit_identical():
    config = TrainConfig(learning_rate=0.3, epochs=300, patience=20, restore_best=True)
    net, h, saved = _checkpoints(0, config, every=3)
    assert h.outcome == "patience"
    mid = [s for s in saved if s.wait > 0 and s.best_theta is not None]
    assert mid, "no checkpoint between the best epoch and the stop"
    state = TrainState.from_bytes(mid[-1].to_bytes())  # through the bytes a worker stores
    assert_same_state(state, mid[-1])
    rng = np.random.default_rng(123)  # the state's generator replaces it
    resumed = Network([2, 12, 1], rng=np.random.default_rng(9))
    h2 = train(resumed, X_TR, Y_TR, config, rng=rng, validation=(X_VA, Y_VA), state=state)
    assert (h2.outcome, h2.epochs, h2.best_epoch) == (h.outcome, h.epochs, h.best_epoch)
    assert h2.restored_best and h2.best_metrics == h.best_metrics
    assert same(resumed.theta, net.theta)
    assert same(h2.val_loss, h.val_loss[state.epoch :])
    assert_same_state(h2.state, h.state)


def test_population_resume_mid_patience_matches_lone_resumes():
    configs = _population_configs()
    seeds = [2, 2, 3, 4, 2]
    states = []
    for cfg, seed in zip(configs, seeds, strict=True):
        saved = _checkpoints(seed, cfg, every=4)[2]
        # a different point for each member: mid-patience where there is one
        waiting = [s for s in saved if s.wait > 0] or saved
        states.append(TrainState.from_bytes(waiting[len(waiting) // 2].to_bytes()))
    assert len({s.epoch for s in states}) > 1
    check_population(
        [2, 12, 1], _Data(X_TR, Y_TR), configs, seeds, validation=(X_VA, Y_VA), states=states
    )


def test_a_state_saved_before_early_stopping_loads_with_nothing_tracked():
    config = TrainConfig(learning_rate=0.3, epochs=40, patience=5, restore_best=True)
    _, _, saved = _checkpoints(0, config, every=10)
    with np.load(io.BytesIO(saved[0].to_bytes()), allow_pickle=False) as z:
        old = {k: z[k] for k in z.files if k not in ("wait", "monitor_best", "best_epoch")}
    old.pop("best_metrics")
    old.pop("best_theta", None)
    out = io.BytesIO()
    np.savez(out, **old)
    state = TrainState.from_bytes(out.getvalue())
    assert (state.wait, state.monitor_best, state.best_epoch) == (0, math.inf, None)
    assert state.best_theta is None and state.best_metrics is None
    assert same(state.params[0], saved[0].params[0])
    # and it resumes: the first epoch after it counts as an improvement
    rng = np.random.default_rng(0)
    net = Network([2, 12, 1], rng=np.random.default_rng(0))
    h = train(net, X_TR, Y_TR, config, rng=rng, validation=(X_VA, Y_VA), state=state)
    assert h.best_epoch is not None and h.best_epoch > state.epoch


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("patience", -1, "patience must be an int >= 0"),
        ("patience", True, "patience must be an int >= 0"),
        ("patience", 2.5, "patience must be an int >= 0"),
        ("min_delta", -0.1, "min_delta must be a finite number >= 0"),
        ("min_delta", math.nan, "min_delta must be a finite number >= 0"),
        ("restore_best", 1, "restore_best must be True or False"),
    ],
)
def test_bad_early_stopping_config(key, value, message):
    with pytest.raises(ValueError, match=message):
        TrainConfig(**{key: value})


def test_patience_none_is_off_and_the_single_net_population_path_agrees():
    assert TrainConfig(patience=None).patience == 0
    config = TrainConfig(learning_rate=0.3, epochs=100, patience=8, restore_best=True)
    net, h = _train(4, config)
    rng = np.random.default_rng(4)
    other = Network([2, 12, 1], rng=rng)
    (hp,) = train_population([other], X_TR, Y_TR, [config], rngs=[rng], validation=(X_VA, Y_VA))
    assert_same_history(h, hp)
    assert same(net.theta, other.theta)
