"""TrainConfig: the training settings of a run, validated once."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .activations import check_name
from .dtypes import DTYPES
from .optimizers import OPTIMIZERS
from .schedule import Phase, parse_schedule, values_at

# What an epoch's metrics (and so the stop criteria) describe.
EPOCH_METRICS = {
    "exact": "the net after the epoch's updates, over the whole training set (with "
    "mini-batches this costs one forward pass over the set per epoch)",
    "running": "summed over the epoch's batches, each measured on the forward pass of its own "
    "update, before that update (scikit-learn's loss_curve_, Keras's loss): no extra pass",
}


# The one table of training defaults: TrainConfig's fields and the sweep spec's parameters
# (service.spec.parameters) both take theirs from here, so a run configured in Python and one
# configured in YAML train alike. The values are the paper's (eps 0.5, alpha 0.9) and solving
# is tracked at 0.5 without stopping, as the spec always had them; full batch is None here
# and "full" in a spec.
TRAINING_DEFAULTS: dict[str, Any] = {
    "learning_rate": 0.5,
    "momentum": 0.9,
    "optimizer": "sgd",
    "batch_size": None,
    "epochs": 1000,
    "weight_decay": 0.0,
    "decay": 0.0,
    "decay_biases": True,
    "error_margin": 0.0,
    "stop_loss": None,
    "stop_within": 0.5,
    "stop_on_solve": False,
    "epoch_metrics": "exact",
    # per-run early stopping (engine.patience): off unless patience > 0 or restore_best
    "patience": 0,
    "min_delta": 0.0,
    "restore_best": False,
    # the floating-point type of the weights, activations, gradients and data (engine.dtypes)
    "dtype": "float64",
}


def _opt_float(value: Any, name: str) -> float | None:
    if value is None:
        return None
    value = float(value)
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be a finite number >= 0 or None, got {value}")
    return value


@dataclass(frozen=True)
class TrainConfig:
    """Training settings (the training keys of a run configuration).

    ``batch_size``: None (or "full") = full batch, the paper's sweep; 1 = per
    pattern; a batch at least as large as the set is a full batch (no shuffle).
    ``weight_decay``: L2 coefficient lambda added to the gradient of the weights
    (not biases): dE/dw += lambda w. It scales with the learning rate and passes
    through momentum (at alpha 0.9 a steady decay is about ten times eps * lambda), so
    it is not the 1986 family-trees "0.2% after each weight change": that is ``decay``.
    ``decay``: after each weight change every parameter is multiplied by (1 - decay),
    the Nature paper's direct decrement (decay=0.002 for its 0.2%), apart from the
    optimizer; ``decay_biases`` (default True: the paper's bias is the weight from an
    always-on unit, one of "every weight") says whether biases shrink too.
    ``error_margin``: the paper's dead zone: an output within this of its target
    (|o - e| < error_margin; for 0/1 targets above 1 - margin when the target is 1,
    below margin when it is 0) has no error and no delta in the update; the reported
    loss stays the plain cost. ``stop_within``: solved when every output is within
    this of its target (max |o - e| < stop_within); ``stop_on_solve`` then stops there.
    ``schedule``: phases, see ``engine.schedule``. ``epoch_metrics``: "exact" or
    "running", see EPOCH_METRICS; with a full batch "running" gives each epoch the
    metrics of the weights it started from. ``patience``: stop after this many epochs in a
    row whose monitored value (val_loss with a validation set, else loss) is not lower than
    the best by more than ``min_delta`` (0 or None = never); ``restore_best``: end with the
    best epoch's weights; see ``engine.patience``. ``dtype``: "float64" or "float32", the
    type the net computes in (see ``engine.dtypes``); the network must be built in it.
    """

    learning_rate: float = TRAINING_DEFAULTS["learning_rate"]
    momentum: float = TRAINING_DEFAULTS["momentum"]
    optimizer: str = TRAINING_DEFAULTS["optimizer"]
    batch_size: int | None = TRAINING_DEFAULTS["batch_size"]
    epochs: int = TRAINING_DEFAULTS["epochs"]
    weight_decay: float = TRAINING_DEFAULTS["weight_decay"]
    decay: float = TRAINING_DEFAULTS["decay"]
    decay_biases: bool = TRAINING_DEFAULTS["decay_biases"]
    error_margin: float = TRAINING_DEFAULTS["error_margin"]
    stop_loss: float | None = TRAINING_DEFAULTS["stop_loss"]
    stop_within: float | None = TRAINING_DEFAULTS["stop_within"]
    stop_on_solve: bool = TRAINING_DEFAULTS["stop_on_solve"]
    schedule: tuple[Phase, ...] = field(default=())
    epoch_metrics: str = TRAINING_DEFAULTS["epoch_metrics"]
    patience: int | None = TRAINING_DEFAULTS["patience"]
    min_delta: float = TRAINING_DEFAULTS["min_delta"]
    restore_best: bool = TRAINING_DEFAULTS["restore_best"]
    dtype: str = TRAINING_DEFAULTS["dtype"]

    def __post_init__(self) -> None:
        lr = float(self.learning_rate)
        if not (math.isfinite(lr) and lr > 0):
            raise ValueError(f"learning_rate must be > 0, got {self.learning_rate}")
        mom = float(self.momentum)
        if not 0.0 <= mom < 1.0:
            raise ValueError(f"momentum must be in [0, 1), got {self.momentum}")
        check_name("optimizer", self.optimizer, OPTIMIZERS)
        batch = self.batch_size
        if batch == "full":
            batch = None
        bad = isinstance(batch, bool) or not isinstance(batch, int) or batch < 1
        if batch is not None and bad:
            raise ValueError(f"batch_size must be 'full', None or an int >= 1, got {batch!r}")
        if isinstance(self.epochs, bool) or not isinstance(self.epochs, int) or self.epochs < 1:
            raise ValueError(f"epochs must be an int >= 1, got {self.epochs!r}")
        wd = _opt_float(self.weight_decay, "weight_decay")
        decay = _opt_float(self.decay, "decay") or 0.0
        if decay >= 1.0:
            raise ValueError(f"decay must be in [0, 1), got {decay}")
        if not isinstance(self.decay_biases, bool):
            raise ValueError(f"decay_biases must be True or False, got {self.decay_biases!r}")
        set_ = object.__setattr__
        set_(self, "learning_rate", lr)
        set_(self, "momentum", mom)
        set_(self, "batch_size", batch)
        set_(self, "weight_decay", wd or 0.0)
        set_(self, "decay", decay)
        set_(self, "error_margin", _opt_float(self.error_margin, "error_margin") or 0.0)
        set_(self, "stop_loss", _opt_float(self.stop_loss, "stop_loss"))
        set_(self, "stop_within", _opt_float(self.stop_within, "stop_within"))
        set_(self, "stop_on_solve", bool(self.stop_on_solve))
        set_(self, "schedule", parse_schedule(self.schedule))
        check_name("epoch_metrics", self.epoch_metrics, EPOCH_METRICS)
        patience = 0 if self.patience is None else self.patience
        if isinstance(patience, bool) or not isinstance(patience, int) or patience < 0:
            raise ValueError(f"patience must be an int >= 0 or None, got {self.patience!r}")
        set_(self, "patience", patience)
        set_(self, "min_delta", _opt_float(self.min_delta, "min_delta") or 0.0)
        if not isinstance(self.restore_best, bool):
            raise ValueError(f"restore_best must be True or False, got {self.restore_best!r}")
        dtype = self.dtype.name if isinstance(self.dtype, np.dtype) else self.dtype
        set_(self, "dtype", check_name("dtype", dtype, DTYPES))

    @classmethod
    def from_dict(cls, config: Mapping[str, Any]) -> TrainConfig:
        """Build from a run configuration, ignoring its network and dataset keys."""
        names = cls.__dataclass_fields__.keys()
        return cls(**{k: v for k, v in config.items() if k in names})

    def values_at(self, epoch: int) -> tuple[float, float]:
        """(learning_rate, momentum) in force during ``epoch``."""
        return values_at(self.schedule, epoch, self.learning_rate, self.momentum)
