"""One momentum step of a 2-2-1 sigmoid net, worked out by hand from the 1986 formulas."""

import math

import numpy as np

from engine import Network, TrainConfig, train


def sig(x):
    return 1.0 / (1.0 + math.exp(-x))


def test_one_hand_worked_momentum_step():
    # weights w[i][j] from input i to hidden j; v[j] from hidden j to the output
    w = [[0.1, -0.2], [0.4, 0.3]]
    bh = [0.05, -0.1]
    v = [0.7, -0.5]
    bo = 0.2
    x = [1.0, 0.0]
    e = 1.0
    eps, alpha = 0.5, 0.9
    prev = 0.01  # dw(t-1) for every parameter, to see the momentum term act

    # forward: i_j = sum_i o_i w_ij + bias, o_j = 1 / (1 + exp(-i_j))
    h = [sig(x[0] * w[0][j] + x[1] * w[1][j] + bh[j]) for j in range(2)]
    o = sig(h[0] * v[0] + h[1] * v[1] + bo)
    # E = 1/2 (o - e)^2; output delta = (o - e) o (1 - o)
    d_out = (o - e) * o * (1 - o)
    # hidden delta_j = o_j (1 - o_j) delta_out v_j
    d_h = [h[j] * (1 - h[j]) * d_out * v[j] for j in range(2)]
    # dE/dw_ij = o_i delta_j; dw = -eps dE/dw + alpha dw(t-1)
    new_w = [[w[i][j] - eps * x[i] * d_h[j] + alpha * prev for j in range(2)] for i in range(2)]
    new_bh = [bh[j] - eps * d_h[j] + alpha * prev for j in range(2)]
    new_v = [v[j] - eps * h[j] * d_out + alpha * prev for j in range(2)]
    new_bo = bo - eps * d_out + alpha * prev

    net = Network([2, 2, 1], rng=np.random.default_rng(0))
    net.set_params([np.array(w), np.array(bh), np.array([[v[0]], [v[1]]]), np.array([bo])])
    X, Y = np.array([x]), np.array([[e]])
    assert abs(net.forward(X)[0, 0] - o) < 1e-15
    grads = net.gradient(X, Y)
    np.testing.assert_allclose(grads[0], [[x[i] * d_h[j] for j in range(2)] for i in range(2)])
    np.testing.assert_allclose(grads[3], [d_out], rtol=1e-14)

    # one epoch from a state whose velocity is dw(t-1) = 0.01 everywhere
    first = train(
        net,
        X,
        Y,
        TrainConfig(learning_rate=eps, momentum=alpha, epochs=1),
        rng=np.random.default_rng(0),
    )
    state = first.state
    state.params = [np.array(w), np.array(bh), np.array([[v[0]], [v[1]]]), np.array([bo])]
    state.buffers["velocity"][...] = prev
    state.epoch = 0
    train(
        net,
        X,
        Y,
        TrainConfig(learning_rate=eps, momentum=alpha, epochs=1),
        rng=np.random.default_rng(0),
        state=state,
    )
    W1, b1, W2, b2 = net.params
    np.testing.assert_allclose(W1, new_w, rtol=0, atol=1e-15)
    np.testing.assert_allclose(b1, new_bh, rtol=0, atol=1e-15)
    np.testing.assert_allclose(W2[:, 0], new_v, rtol=0, atol=1e-15)
    np.testing.assert_allclose(b2, [new_bo], rtol=0, atol=1e-15)
