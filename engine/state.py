"""TrainState: everything needed to continue training exactly where it stopped."""

from __future__ import annotations

import io
import json
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

Array = np.ndarray


def _to_jsonable(value: Any) -> Any:
    # Generator states are dicts of ints (PCG64) or hold arrays (MT19937).
    if isinstance(value, np.ndarray):
        return {"__ndarray__": value.tolist(), "dtype": str(value.dtype)}
    if isinstance(value, dict):
        return {k: _to_jsonable(v) for k, v in value.items()}
    if isinstance(value, np.integer):
        return int(value)
    return value


def _from_jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        if "__ndarray__" in value:
            return np.array(value["__ndarray__"], dtype=value["dtype"])
        return {k: _from_jsonable(v) for k, v in value.items()}
    return value


@dataclass
class TrainState:
    """The state after ``epoch`` completed epochs.

    ``params``: copies in ``Network.params`` order; ``buffers``: the optimizer's
    arrays; ``rng_state``: ``Generator.bit_generator.state``. Early stopping
    (``engine.patience``): ``wait`` epochs without improvement so far, ``monitor_best`` the
    best monitored value, ``best_epoch`` its epoch (None: not tracked or none yet), and with
    restore_best ``best_theta`` (the best epoch's weights as ``Network.theta``) and
    ``best_metrics`` (that epoch's metrics). States saved before these existed load with the
    defaults: nothing tracked yet.
    """

    epoch: int
    params: list[Array]
    optimizer: str
    buffers: dict[str, Array]
    rng_state: dict[str, Any]
    best_loss: float = math.inf
    solved_epoch: int | None = None
    wait: int = 0
    monitor_best: float = math.inf
    best_epoch: int | None = None
    best_theta: Array | None = None
    best_metrics: dict[str, float | None] | None = None

    def to_bytes(self) -> bytes:
        """Serialise with np.savez (no pickles)."""
        arrays: dict[str, Array] = {
            "epoch": np.array(self.epoch, dtype=np.int64),
            "optimizer": np.array(self.optimizer),
            "rng_state": np.array(json.dumps(_to_jsonable(self.rng_state))),
            "best_loss": np.array(self.best_loss, dtype=np.float64),
            "solved_epoch": np.array(
                -1 if self.solved_epoch is None else self.solved_epoch, dtype=np.int64
            ),
            "n_params": np.array(len(self.params), dtype=np.int64),
            "wait": np.array(self.wait, dtype=np.int64),
            "monitor_best": np.array(self.monitor_best, dtype=np.float64),
            "best_epoch": np.array(-1 if self.best_epoch is None else self.best_epoch),
            "best_metrics": np.array(json.dumps(self.best_metrics)),
        }
        if self.best_theta is not None:
            arrays["best_theta"] = self.best_theta
        for k, p in enumerate(self.params):
            arrays[f"param_{k}"] = p
        for name, buf in self.buffers.items():
            arrays[f"buffer_{name}"] = buf
        out = io.BytesIO()
        np.savez(out, **arrays)  # type: ignore[arg-type]
        return out.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> TrainState:
        """Inverse of ``to_bytes`` (np.load with allow_pickle=False)."""
        try:
            with np.load(io.BytesIO(data), allow_pickle=False) as z:
                solved = int(z["solved_epoch"])
                # absent from states saved before early stopping: nothing tracked yet
                best_epoch = int(z["best_epoch"]) if "best_epoch" in z.files else -1
                metrics = json.loads(str(z["best_metrics"])) if "best_metrics" in z.files else None
                return cls(
                    epoch=int(z["epoch"]),
                    params=[z[f"param_{k}"] for k in range(int(z["n_params"]))],
                    optimizer=str(z["optimizer"]),
                    buffers={k[7:]: z[k] for k in z.files if k.startswith("buffer_")},
                    rng_state=_from_jsonable(json.loads(str(z["rng_state"]))),
                    best_loss=float(z["best_loss"]),
                    solved_epoch=None if solved < 0 else solved,
                    wait=int(z["wait"]) if "wait" in z.files else 0,
                    monitor_best=float(z["monitor_best"])
                    if "monitor_best" in z.files
                    else math.inf,
                    best_epoch=None if best_epoch < 0 else best_epoch,
                    best_theta=z["best_theta"] if "best_theta" in z.files else None,
                    best_metrics=metrics,
                )
        except (KeyError, ValueError, OSError) as exc:
            raise ValueError(f"not a bplab training state: {exc}") from None
