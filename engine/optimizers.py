"""Weight updates on the flat parameter vector, in place.

All parameters of a network live in one flat vector (``Network.theta``, float64 or float32)
and the gradient in another of the same size, so an update is a handful of
in-place ufuncs whatever the depth, with no weight-sized temporaries: on wide
nets a fresh multi-MB temporary per step costs more than the update itself.

* ``sgd``: the 1986 paper's momentum, dw(t) = -eps dE/dw + alpha dw(t-1).
* ``nesterov``: the same velocity, applied with a look-ahead:
  dw(t) = alpha v(t) - eps dE/dw with v(t) = alpha v(t-1) - eps dE/dw
  (the form used by scikit-learn and Sutskever et al. 2013).
* ``adam``: Kingma & Ba (2015) with beta1 = 0.9, beta2 = 0.999, eps_hat = 1e-8;
  the run's ``momentum`` does not enter Adam.

Each optimizer's buffers are plain arrays (``buffers``) so that a training state
can save and restore them exactly. Step functions *clobber the gradient* (they use
it as scratch): it is recomputed every step anyway.

``sgd`` and ``nesterov`` take the gradient already multiplied by -eps
(``folds_learning_rate``): backprop is linear in the output deltas, so the trainer
scales those (d_out x m numbers) instead of the gradient (every parameter), which
saves one of four passes over the parameters per step on a wide net.
"""

from __future__ import annotations

import math

import numpy as np

from .activations import check_name

Array = np.ndarray

OPTIMIZERS: dict[str, str] = {
    "sgd": "gradient descent with the 1986 paper's momentum dw = -eps g + alpha dw_prev",
    "nesterov": "Nesterov momentum (look-ahead form)",
    "adam": "Adam (beta1 0.9, beta2 0.999, eps 1e-8); ignores momentum",
}

ADAM_BETA1 = 0.9
ADAM_BETA2 = 0.999
ADAM_EPS = 1e-8

# Elements per slice of a wide net's update. The momentum update is three passes over
# vectors of ~1.6 MB on a 784-256-10 net, too large for the L2 cache; done a slice at a
# time the slice stays cached between the passes (~20% faster there). The same ufuncs,
# elementwise, so the same bits; nets with fewer parameters take one slice, as before.
SLICE = 16_384


def _slices(size: int) -> list[slice] | None:
    """None: one pass over the whole vector (small nets, no slicing overhead)."""
    if size <= 2 * SLICE:
        return None
    return [slice(start, start + SLICE) for start in range(0, size, SLICE)]


class Optimizer:
    """Base class: ``buffers`` maps names to arrays that fully describe its state."""

    name = ""
    folds_learning_rate = False  # True: step() gets -learning_rate * dE/dw as ``grad``

    def __init__(self, size: int, dtype: np.dtype | type = np.float64) -> None:
        self.buffers: dict[str, Array] = {}

    def step(self, theta: Array, grad: Array, learning_rate: float, momentum: float) -> None:
        raise NotImplementedError

    def load_buffers(self, buffers: dict[str, Array]) -> None:
        """Copy saved buffers in (shapes must match)."""
        for key, value in self.buffers.items():
            if key not in buffers or np.shape(buffers[key]) != value.shape:
                raise ValueError(f"{self.name} state lacks buffer {key!r} of shape {value.shape}")
            value[...] = buffers[key]


class SGD(Optimizer):
    name = "sgd"
    folds_learning_rate = True

    def __init__(self, size: int, dtype: np.dtype | type = np.float64) -> None:
        self.velocity = np.zeros(size, dtype=dtype)
        self.buffers = {"velocity": self.velocity}
        self.slices = _slices(size)

    def step(self, theta: Array, grad: Array, learning_rate: float, momentum: float) -> None:
        """dw = alpha dw_prev + grad, where grad = -eps dE/dw (folded by the trainer)."""
        if self.slices is None:
            _momentum_step(theta, grad, self.velocity, momentum)
            return
        for part in self.slices:
            _momentum_step(theta[part], grad[part], self.velocity[part], momentum)


def _momentum_step(theta: Array, step: Array, v: Array, momentum: float) -> None:
    v *= momentum
    v += step
    theta += v


class Nesterov(Optimizer):
    name = "nesterov"
    folds_learning_rate = True

    def __init__(self, size: int, dtype: np.dtype | type = np.float64) -> None:
        self.velocity = np.zeros(size, dtype=dtype)
        self.buffers = {"velocity": self.velocity}

    def step(self, theta: Array, grad: Array, learning_rate: float, momentum: float) -> None:
        """As SGD, ``grad`` = -eps dE/dw."""
        v = self.velocity
        v *= momentum
        v += grad
        theta += grad
        # theta += momentum * v, through the gradient's (already used) memory
        np.multiply(v, momentum, out=grad)
        theta += grad


class Adam(Optimizer):
    name = "adam"

    def __init__(self, size: int, dtype: np.dtype | type = np.float64) -> None:
        self.m = np.zeros(size, dtype=dtype)
        self.v = np.zeros(size, dtype=dtype)
        self.t = np.zeros((), dtype=np.int64)
        self.tmp = np.empty(size, dtype=dtype)
        self.buffers = {"m": self.m, "v": self.v, "t": self.t}

    def step(self, theta: Array, grad: Array, learning_rate: float, momentum: float) -> None:
        self.t += 1
        t = int(self.t)
        m, v, tmp = self.m, self.v, self.tmp
        m *= ADAM_BETA1
        np.multiply(grad, 1.0 - ADAM_BETA1, out=tmp)
        m += tmp
        v *= ADAM_BETA2
        grad *= grad
        grad *= 1.0 - ADAM_BETA2
        v += grad
        # theta -= lr / bc1 * m / (sqrt(v) / sqrt(bc2) + eps), as PyTorch writes it
        bc1 = 1.0 - ADAM_BETA1**t
        bc2 = 1.0 - ADAM_BETA2**t
        np.sqrt(v, out=tmp)
        tmp *= 1.0 / math.sqrt(bc2)
        tmp += ADAM_EPS
        np.divide(m, tmp, out=tmp)
        tmp *= learning_rate / bc1
        theta -= tmp


_CLASSES: dict[str, type[Optimizer]] = {"sgd": SGD, "nesterov": Nesterov, "adam": Adam}


def make_optimizer(name: str, size: int, dtype: np.dtype | type = np.float64) -> Optimizer:
    """A fresh optimizer of the given name for ``size`` parameters of ``dtype``."""
    check_name("optimizer", name, OPTIMIZERS)
    return _CLASSES[name](size, dtype)
