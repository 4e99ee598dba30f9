"""Population training gives every member exactly what engine.train gives it alone."""

from __future__ import annotations

import math

import numpy as np
import pytest

from engine import (
    Network,
    StopTraining,
    TrainConfig,
    TrainState,
    group_mask,
    load_dataset,
    train,
    train_population,
)

SYM4 = load_dataset("symmetry:4")
XOR = load_dataset("xor")


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
    singles, seen_single, ckpt_single, rngs_single = [], [], [], []
    for k, (cfg, seed) in enumerate(zip(configs, seeds, strict=True)):
        net, rng = build(sizes, seed, **net_kw)
        seen: list = []
        ckpts: list = []

        def cb(epoch, metrics, k=k, seen=seen):
            seen.append((epoch, metrics))
            if stop_at.get(k) == epoch:
                raise StopTraining()

        h = train(
            net,
            data.X,
            data.Y,
            cfg,
            rng=rng,
            on_epoch=cb,
            validation=validation,
            state=None if states is None else states[k],
            checkpoint_every=checkpoint_every,
            on_checkpoint=ckpts.append,
        )
        singles.append((net, h))
        rngs_single.append(rng)
        seen_single.append(seen)
        ckpt_single.append(ckpts)

    built = [build(sizes, seed, **net_kw) for seed in seeds]
    seen_pop: list[list] = [[] for _ in configs]
    ckpt_pop: list[list] = [[] for _ in configs]

    def pop_cb(k, epoch, metrics):
        seen_pop[k].append((epoch, metrics))
        if stop_at.get(k) == epoch:
            raise StopTraining()

    hists = train_population(
        [b[0] for b in built],
        data.X,
        data.Y,
        configs,
        rngs=[b[1] for b in built],
        on_epoch=pop_cb,
        validation=validation,
        states=states,
        checkpoint_every=checkpoint_every,
        on_checkpoint=lambda k, s: ckpt_pop[k].append(s),
    )
    assert len(hists) == len(configs)
    for k, ((net, h), hp) in enumerate(zip(singles, hists, strict=True)):
        assert_same_history(h, hp)
        assert same(net.theta, built[k][0].theta), f"member {k} weights"
        assert built[k][1].bit_generator.state == rngs_single[k].bit_generator.state
        assert len(seen_single[k]) == len(seen_pop[k])
        for (e1, m1), (e2, m2) in zip(seen_single[k], seen_pop[k], strict=True):
            assert e1 == e2 and m1.keys() == m2.keys()
            for key in m1:
                v1, v2 = m1[key], m2[key]
                assert (v1 is None and v2 is None) or same_float(v1, v2), (k, e1, key)
        assert [s.epoch for s in ckpt_single[k]] == [s.epoch for s in ckpt_pop[k]]
        for s1, s2 in zip(ckpt_single[k], ckpt_pop[k], strict=True):
            assert_same_state(s1, s2)
    return hists


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


@pytest.mark.parametrize("data_name,sizes", [("xor", [2, 2, 1]), ("symmetry:6", [6, 2, 1])])
def test_shared_input_layer_as_one_gemm(data_name, sizes):
    """Full batch without skip connections: layer 0's forward and gradient products run as
    one GEMM over all members where ``engine.stacked`` verified, for these sizes, that it
    gives each member's own np.dot bits (else per member). Either way: identical members."""
    from engine import stacked

    data = load_dataset(data_name)
    K = 24
    configs = [
        TrainConfig(learning_rate=0.5 * (0.5 + k / K), momentum=0.9, epochs=150, stop_within=0.3)
        for k in range(K)
    ]
    check_population(sizes, data, configs, seeds=list(range(K)))
    rows, m = sizes[0] + 1, data.X.shape[0]
    # a member's product with a dimension 1 is a gemv/dot, never the GEMM's kernel
    assert not stacked._gemm_ok("forward", K, rows, 1, m)
    assert not stacked._gemm_ok("grad", K, rows, sizes[1], 1)
    # where the check passed, the GEMM gives every member's np.dot bits on fresh numbers too,
    # in the layout the engine stores inputs in (sample-major) and the other
    rng = np.random.default_rng(99)
    for sample_major in (True, False):
        x = rng.standard_normal((m, rows)).T if sample_major else rng.standard_normal((rows, m))
        w = rng.standard_normal((K, rows, sizes[1]))
        dl = rng.standard_normal((K, sizes[1], m))
        if stacked._gemm_ok("forward", K, rows, sizes[1], m, sample_major):
            wf = np.ascontiguousarray(w.transpose(1, 0, 2)).reshape(rows, -1)
            fast = np.dot(wf.T, x).reshape(K, sizes[1], m)
            for k in range(K):
                assert np.array_equal(fast[k], np.dot(w[k].T, x))
        if stacked._gemm_ok("grad", K, rows, sizes[1], m, sample_major):
            g = np.dot(x, dl.reshape(-1, m).T).reshape(rows, K, sizes[1])
            for k in range(K):
                assert np.array_equal(g[:, k], np.dot(x, dl[k].T))


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


@pytest.mark.parametrize("K", [1, 2, 3])
@pytest.mark.parametrize("batch_size", [2, 3])
def test_small_populations_with_mini_batches(K, batch_size):
    """A population of one to three members, one output unit, mini-batches: the one-unit
    gradient's np.einsum once passed its bit check by chance (the check compared 3 numbers
    per draw for one member) and gave other bits than np.dot; the check now compares at
    least engine.verify.TRIAL_RESULTS numbers."""
    configs = [
        TrainConfig(learning_rate=0.3 + 0.1 * k, momentum=0.5, epochs=25, batch_size=batch_size)
        for k in range(K)
    ]
    check_population([2, 2, 1], XOR, configs, seeds=list(range(K)))


@pytest.mark.parametrize("K,rows,m", [(1, 3, 2), (2, 3, 2), (1, 3, 4), (8, 3, 4), (1, 5, 3)])
def test_einsum_is_used_only_where_it_gives_np_dot_bits(K, rows, m):
    from engine import verify

    rng = np.random.default_rng(31)
    for _ in range(200 if verify._einsum_ok(K, rows, m) else 0):
        a = rng.standard_normal((K, rows, m))
        dl = rng.standard_normal((K, 1, m))
        out = np.zeros((K, rows + 2))
        np.einsum("kip,kp->ki", a, dl[:, 0], out=out[:, 1 : 1 + rows])
        for k in range(K):
            assert np.array_equal(out[k, 1 : 1 + rows], np.dot(a[k], dl[k].T)[:, 0])
