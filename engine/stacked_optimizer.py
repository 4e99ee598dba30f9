"""The optimizers of ``engine.optimizers`` for K members at once, rows of (K, P) arrays.

Every operation is the single net's, elementwise, with the member's own learning rate and
momentum as (K, 1) columns: each row gets the single optimizer's bits. Why not the classes
of ``engine.optimizers`` themselves: they take one scalar learning rate and momentum per
step and keep one step count (Adam), where a population has K of each; run per member
they would cost K calls per step, the overhead a population exists to avoid.
"""

from __future__ import annotations

import numpy as np

from .optimizers import ADAM_BETA1, ADAM_BETA2, ADAM_EPS

Array = np.ndarray


# Up to this many parameters per member the optimizer spreads (K, 1) columns to (K, P).
WIDE_PARAMETERS = 64


class StackedOptimizer:
    """The optimizers of ``engine.optimizers`` for K members; ``buffers`` hold (K, ...) rows."""

    def __init__(self, name: str, buffers: dict[str, Array]) -> None:
        self.name = name
        self.buffers = buffers
        self._wide_of: Array | None = None
        self._wide_col = np.empty(0, next(iter(buffers.values())).dtype)
        if name == "adam":
            self.tmp = np.empty_like(buffers["m"])

    @classmethod
    def zeros(
        cls, name: str, K: int, P: int, dtype: np.dtype | type = np.float64
    ) -> StackedOptimizer:
        if name == "adam":
            m, v = np.zeros((K, P), dtype), np.zeros((K, P), dtype)
            return cls(name, {"m": m, "v": v, "t": np.zeros(K, np.int64)})
        return cls(name, {"velocity": np.zeros((K, P), dtype)})

    def take(self, rows: Array) -> StackedOptimizer:
        """The optimizer of the members in ``rows`` (copies)."""
        return StackedOptimizer(self.name, {k: v[rows] for k, v in self.buffers.items()})

    def member_buffers(self, row: int) -> dict[str, Array]:
        """Copies of one member's buffers, shaped as the single-net optimizer's."""
        return {k: np.array(v[row]) for k, v in self.buffers.items()}

    def load_member(self, row: int, buffers: dict[str, Array]) -> None:
        for key, value in self.buffers.items():
            if key not in buffers or np.shape(buffers[key]) != value.shape[1:]:
                raise ValueError(
                    f"{self.name} state lacks buffer {key!r} of shape {value.shape[1:]}"
                )
            value[row] = buffers[key]

    def _wide(self, col: Array, P: int) -> Array:
        """A (K, 1) column as a (K, P) array for small P: a multiply broadcasting a column
        runs an inner loop of P numbers per member, ~3x the time of a plain one at P = 9.
        Made again only when the caller passes a new column (schedules, compaction)."""
        if P > WIDE_PARAMETERS:
            return col
        if self._wide_of is not col:
            self._wide_of, self._wide_col = col, np.repeat(col, P, axis=1)
        return self._wide_col

    @property
    def folds_learning_rate(self) -> bool:
        """As ``engine.optimizers``: sgd and nesterov take -eps dE/dw as ``grad``."""
        return self.name != "adam"

    def step(self, theta: Array, grad: Array, lr: Array, mom: Array) -> None:
        """One update of every row; ``lr``: (K, 1) float64, ``mom``: (K, 1) of theta's dtype.
        Clobbers ``grad``."""
        if self.name == "adam":
            self._adam(theta, grad, lr)
            return
        v = self.buffers["velocity"]
        mom = self._wide(mom, v.shape[1])
        v *= mom
        v += grad
        if self.name == "sgd":
            theta += v
        else:  # nesterov: the look-ahead form of engine.optimizers.Nesterov
            theta += grad
            np.multiply(v, mom, out=grad)
            theta += grad

    def _adam(self, theta: Array, grad: Array, lr: Array) -> None:
        m, v, t, tmp = self.buffers["m"], self.buffers["v"], self.buffers["t"], self.tmp
        t += 1
        m *= ADAM_BETA1
        np.multiply(grad, 1.0 - ADAM_BETA1, out=tmp)
        m += tmp
        v *= ADAM_BETA2
        grad *= grad
        grad *= 1.0 - ADAM_BETA2
        v += grad
        # Python's float ** int, as the single-net Adam computes it (np.power may use a
        # SIMD pow that differs in the last bit); members mostly share t, so few pows.
        corr = {x: (1.0 - ADAM_BETA1**x, 1.0 - ADAM_BETA2**x) for x in set(t.tolist())}
        bc1 = np.array([corr[x][0] for x in t.tolist()])
        bc2 = np.array([corr[x][1] for x in t.tolist()])
        # the factors in float64 as the single net's Python floats, rounded to the dtype once
        np.sqrt(v, out=tmp)
        tmp *= (1.0 / np.sqrt(bc2))[:, None].astype(tmp.dtype)
        tmp += ADAM_EPS
        np.divide(m, tmp, out=tmp)
        tmp *= (lr / bc1[:, None]).astype(tmp.dtype)
        theta -= tmp
