"""The training loop: determinism, resume, learning, stopping, divergence."""

import math
import warnings

import numpy as np
import pytest

from engine import Network, StopTraining, TrainConfig, TrainState, load_dataset, train

XOR = load_dataset("xor")


def _xor_net(seed, **kw):
    return Network([2, 2, 1], rng=np.random.default_rng(seed), **kw)


def _run(seed, config, dataset=XOR, sizes=(2, 2, 1), **kw):
    rng = np.random.default_rng(seed)
    net = Network(list(sizes), rng=rng, **kw)
    hist = train(net, dataset.X, dataset.Y, config, rng=rng)
    return net, hist


def test_same_seed_same_numbers_different_seed_differs():
    cfg = TrainConfig(learning_rate=0.5, momentum=0.9, epochs=200, batch_size=1)
    n1, h1 = _run(1, cfg)
    n2, h2 = _run(1, cfg)
    n3, h3 = _run(2, cfg)
    assert np.array_equal(n1.theta, n2.theta)
    assert np.array_equal(h1.loss, h2.loss)
    assert not np.array_equal(h1.loss, h3.loss)
    assert not np.array_equal(n1.theta, n3.theta)


@pytest.mark.parametrize("epoch_metrics", ["exact", "running"])
@pytest.mark.parametrize("optimizer", ["sgd", "nesterov", "adam"])
@pytest.mark.parametrize("batch_size", [None, 1, 3])
def test_resume_is_bit_identical(optimizer, batch_size, epoch_metrics):
    data = load_dataset("symmetry:4")
    cfg = TrainConfig(
        learning_rate=0.3 if optimizer != "adam" else 0.01,
        momentum=0.9,
        optimizer=optimizer,
        batch_size=batch_size,
        epochs=40,
        weight_decay=0.01,
        schedule=[{"until": 10, "momentum": 0.5}, {"until": 25, "learning_rate": 0.2}],
        epoch_metrics=epoch_metrics,
    )
    rng = np.random.default_rng(5)
    full_net = Network([4, 3, 1], rng=rng, skip_connections=True)
    saved = []
    full = train(
        full_net, data.X, data.Y, cfg, rng=rng, checkpoint_every=15, on_checkpoint=saved.append
    )
    assert [s.epoch for s in saved] == [15, 30]

    # a fresh process: rebuild from the serialised checkpoint only
    state = TrainState.from_bytes(saved[0].to_bytes())
    rng2 = np.random.default_rng(999)  # its state is overwritten by the checkpoint
    net2 = Network([4, 3, 1], rng=rng2, skip_connections=True)
    rest = train(net2, data.X, data.Y, cfg, rng=rng2, state=state)
    assert np.array_equal(full_net.theta, net2.theta)
    assert rest.start_epoch == 16 and rest.epochs == full.epochs == 40
    assert np.array_equal(full.loss[15:], rest.loss)
    assert np.array_equal(full.max_error[15:], rest.max_error)
    assert np.array_equal(full.accuracy[15:], rest.accuracy)
    assert full.best_loss == rest.best_loss and full.outcome == rest.outcome
    for key in full.state.buffers:
        assert np.array_equal(full.state.buffers[key], rest.state.buffers[key])


def test_xor_221_learns_for_most_seeds():
    cfg = TrainConfig(
        learning_rate=0.5, momentum=0.9, epochs=3000, stop_within=0.5, stop_on_solve=True
    )
    outcomes = [_run(seed, cfg)[1] for seed in range(20)]
    solved = [h for h in outcomes if h.outcome == "solved"]
    assert len(solved) >= 15
    for h in solved:
        assert h.solved_epoch == h.epochs
        assert h.max_error[-1] < 0.5 and (h.max_error[:-1] >= 0.5).all()
        assert h.final_accuracy == 1.0


def test_divergence_is_an_outcome_with_a_finite_prefix():
    data = load_dataset("parity:3")
    cfg = TrainConfig(learning_rate=1e6, momentum=0.9, epochs=500, optimizer="sgd")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        net, h = _run(0, cfg, data, (3, 4, 1), activation="relu", output_activation="identity")
    assert h.outcome == "diverged"
    assert h.epochs == len(h.loss) < 500
    assert np.isfinite(h.loss[:-1]).all()
    assert not math.isfinite(h.loss[-1]) or not np.isfinite(net.theta).all()


def test_metrics_describe_the_net_after_the_epoch():
    seen = {}
    rng = np.random.default_rng(3)
    net = _xor_net(3)
    for batch in (None, 2):
        h = train(
            net,
            XOR.X,
            XOR.Y,
            TrainConfig(learning_rate=0.5, epochs=3, batch_size=batch),
            rng=rng,
            on_epoch=lambda e, m: seen.__setitem__(e, m),
        )
        assert seen[3]["loss"] == pytest.approx(net.loss(XOR.X, XOR.Y), rel=1e-14)
        out = net.forward(XOR.X)
        assert seen[3]["max_error"] == pytest.approx(np.abs(out - XOR.Y).max(), rel=1e-14)
        expected_acc = np.mean((np.abs(out - XOR.Y) < 0.5).all(axis=1))
        assert seen[3]["accuracy"] == expected_acc == h.final_accuracy
        assert h.metrics(3) == seen[3]


def test_running_metrics_full_batch_describe_the_weights_each_epoch_starts_from():
    cfg = dict(learning_rate=0.5, momentum=0.9, epochs=30)
    start = _xor_net(4)
    initial_loss = start.loss(XOR.X, XOR.Y)
    exact_net, exact = _run(4, TrainConfig(**cfg))
    net, running = _run(4, TrainConfig(**cfg, epoch_metrics="running"))
    # the same updates; each epoch reports what the exact mode reported one epoch earlier
    assert np.array_equal(net.theta, exact_net.theta)
    assert running.loss[0] == pytest.approx(initial_loss, rel=1e-14)
    assert np.array_equal(running.loss[1:], exact.loss[:-1])
    assert np.array_equal(running.max_error[1:], exact.max_error[:-1])
    assert np.array_equal(running.accuracy[1:], exact.accuracy[:-1])


@pytest.mark.parametrize("cost,output", [("sse", "sigmoid"), ("cross_entropy", "softmax")])
def test_running_metrics_sum_each_batch_before_its_update(cost, output):
    """Redo a mini-batch epoch by hand: the batch losses, taken before each update, sum to
    the running loss; the same weights come out as with exact metrics."""
    data = load_dataset("symmetry:4") if output == "sigmoid" else load_dataset("iris")
    sizes = [data.X.shape[1], 3, data.Y.shape[1]]
    lr, mom, batch = 0.2, 0.5, 5
    kw = dict(cost=cost, output_activation=output)
    rng = np.random.default_rng(7)
    net = Network(sizes, rng=rng, **kw)
    hand_rng = np.random.default_rng(7)
    hand_net = Network(sizes, rng=hand_rng, **kw)  # (a deepcopy would break theta's views)
    cfg = TrainConfig(
        learning_rate=lr, momentum=mom, batch_size=batch, epochs=2, epoch_metrics="running"
    )
    h = train(net, data.X, data.Y, cfg, rng=rng)

    n = len(data.X)
    velocity = [np.zeros_like(p) for p in hand_net.params]
    for epoch in range(2):
        perm = hand_rng.permutation(n)
        total, correct, max_err = 0.0, 0, 0.0
        for start in range(0, n, batch):
            idx = perm[start : start + batch]
            xb, yb = data.X[idx], data.Y[idx]
            out = hand_net.forward(xb)
            loss_b = hand_net.loss(xb, yb)
            total += loss_b * len(idx) if cost == "cross_entropy" else loss_b
            max_err = max(max_err, float(np.abs(out - yb).max()))
            if output == "softmax":
                correct += int((out.argmax(axis=1) == yb.argmax(axis=1)).sum())
            else:
                correct += int((np.abs(out - yb) < 0.5).all(axis=1).sum())
            for p, v, g in zip(hand_net.params, velocity, hand_net.gradient(xb, yb), strict=True):
                v *= mom
                v -= lr * g
                p += v
        expected = total / n if cost == "cross_entropy" else total
        assert h.loss[epoch] == pytest.approx(expected, rel=1e-12)
        assert h.max_error[epoch] == pytest.approx(max_err, rel=1e-12)
        assert h.accuracy[epoch] == correct / n
    np.testing.assert_allclose(net.theta, hand_net.theta, rtol=1e-12, atol=1e-14)

    # the metrics mode changes what is reported, never the updates
    exact_net = Network(sizes, rng=(exact_rng := np.random.default_rng(7)), **kw)
    exact_cfg = TrainConfig(learning_rate=lr, momentum=mom, batch_size=batch, epochs=2)
    train(exact_net, data.X, data.Y, exact_cfg, rng=exact_rng)
    assert np.array_equal(exact_net.theta, net.theta)


def test_epoch_metrics_must_be_a_known_name():
    with pytest.raises(ValueError, match="epoch_metrics 'after'.*exact, running"):
        TrainConfig(epoch_metrics="after")


def test_stop_loss_stop_training_and_validation():
    cfg = TrainConfig(learning_rate=0.5, momentum=0.9, epochs=5000, stop_loss=0.05)
    _, h = _run(0, cfg)
    assert h.outcome == "stop_loss" and h.final_loss < 0.05 <= h.loss[-2]

    def stop_at_7(epoch, metrics):
        assert set(metrics) == {"loss", "accuracy", "max_error", "val_loss", "val_accuracy"}
        if epoch == 7:
            raise StopTraining

    rng = np.random.default_rng(0)
    h = train(
        _xor_net(0),
        XOR.X,
        XOR.Y,
        TrainConfig(epochs=100),
        rng=rng,
        on_epoch=stop_at_7,
        validation=(XOR.X[:2], XOR.Y[:2]),
    )
    assert h.outcome == "stopped" and h.epochs == 7 and len(h.val_loss) == 7


def test_identity_outputs_have_no_accuracy():
    rng = np.random.default_rng(0)
    net = Network([2, 3, 1], output_activation="identity", cost="mse", rng=rng)
    seen = []
    h = train(
        net,
        XOR.X,
        XOR.Y * 3.0,
        TrainConfig(epochs=2),
        rng=rng,
        on_epoch=lambda e, m: seen.append(m["accuracy"]),
    )
    assert h.accuracy is None and seen == [None, None]


def test_schedule_and_weight_decay_as_documented():
    cfg = TrainConfig(
        learning_rate=0.005,
        momentum=0.9,
        weight_decay=0.4,
        epochs=30,
        schedule=[{"until": 20, "momentum": 0.5}],
    )
    assert cfg.values_at(1) == (0.005, 0.5) and cfg.values_at(20) == (0.005, 0.5)
    assert cfg.values_at(21) == (0.005, 0.9)
    # with a zero gradient (sse, identity outputs hitting their targets exactly),
    # weight decay alone shrinks the weights by eps * lambda = 0.2% per sweep
    rng = np.random.default_rng(0)
    net = Network([2, 1], output_activation="identity", rng=rng)
    Y = net.forward(XOR.X)
    w0 = net.params[0].copy()
    train(net, XOR.X, Y, TrainConfig(learning_rate=0.005, weight_decay=0.4, epochs=1), rng=rng)
    np.testing.assert_allclose(net.params[0], w0 * 0.998, rtol=1e-12)


def test_config_from_run_dict_and_validation():
    run = {
        "dataset": "xor",
        "hidden": [2],
        "learning_rate": 0.5,
        "momentum": 0.9,
        "batch_size": "full",
        "epochs": 10,
        "stop_within": 0.4,
        "stop_loss": None,
        "schedule": [{"until": 3, "learning_rate": 0.1}],
        "activation": "sigmoid",
    }
    cfg = TrainConfig.from_dict(run)
    assert cfg.batch_size is None and cfg.epochs == 10 and cfg.schedule[0].learning_rate == 0.1
    for bad in (
        {"learning_rate": 0},
        {"momentum": 1.0},
        {"optimizer": "rmsprop"},
        {"batch_size": 0},
        {"epochs": 0},
        {"schedule": [{"until": 0}]},
        {"schedule": [{"until": 5}, {"until": 5}]},
    ):
        with pytest.raises(ValueError):
            TrainConfig(**bad)
    with pytest.raises(ValueError, match="adam, nesterov, sgd"):
        TrainConfig(optimizer="rmsprop")


def test_sgd_on_a_wide_net_updates_slice_by_slice_with_the_same_bits():
    from engine.optimizers import SLICE, make_optimizer

    rng = np.random.default_rng(0)
    size = 3 * SLICE + 123  # several slices and a short last one
    theta, grad = rng.normal(size=size), rng.normal(size=size)
    opt = make_optimizer("sgd", size)
    assert opt.slices is not None and len(opt.slices) == 4
    velocity = rng.normal(size=size)
    opt.velocity[...] = velocity
    # the trainer hands sgd the gradient already scaled by -learning_rate
    expected_v = velocity * 0.9 + grad
    expected = theta + expected_v
    assert opt.folds_learning_rate
    opt.step(theta, grad.copy(), 0.1, 0.9)
    assert np.array_equal(opt.velocity, expected_v)
    assert np.array_equal(theta, expected)
