"""The sweep parameters: their defaults, one-line descriptions and value checks.

PARAMETERS is the single table: adding a parameter means adding one entry here (the
engine must know the config key too). Every checker takes one value as written in the
spec plus the field path for messages, and returns the normalised, JSON-able value that
goes into the run configuration, or raises Invalid.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from engine import (
    ACTIVATIONS,
    COSTS,
    DTYPES,
    EPOCH_METRICS,
    INITS,
    OPTIMIZERS,
    OUTPUT_ACTIVATIONS,
    TRAINING_DEFAULTS,
)

from .checks import (
    MAX_EPOCHS,
    MAX_INT32,
    Checker,
    boolean,
    choice,
    epoch_count,
    float_check,
    int_check,
    layer_size,
    nullable,
    positive_float,
    unit_interval,
)
from .errors import Invalid, show

# Names people carry over from papers and other tools; only used for did-you-mean.
ALIASES = {
    "lr": "learning_rate",
    "eta": "learning_rate",
    "eps": "learning_rate",
    "epsilon": "learning_rate",
    "alpha": "momentum",
    "hidden_layers": "hidden",
    "hidden_sizes": "hidden",
    "layers": "hidden",
    "loss": "cost",
    "seed": "seeds",
    "max_epochs": "epochs",
    "l2": "weight_decay",
    "weight_decrement": "decay",
    "dead_zone": "error_margin",
    "margin": "error_margin",
}


def hidden_check(value: Any, field: str) -> list[int]:
    """One architecture: an int (one hidden layer) or a list of layer sizes."""
    if isinstance(value, list):
        return [layer_size(size, f"{field}[{i}]") for i, size in enumerate(value)]
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise Invalid(
            field, f"must be a layer size (int >= 1) or a list of sizes, got {show(value)}"
        )
    return [layer_size(value, field)]


def batch_size_check(value: Any, field: str) -> str | int:
    if value == "full":
        return "full"
    if isinstance(value, str):
        raise Invalid(field, f"must be 'full' or an integer >= 1, got {show(value)}")
    return int_check(1, MAX_INT32)(value, field)


def init_check(value: Any, field: str) -> float | str:
    # uniform is spelled as its range r, so only the named schemes are strings here.
    names = [name for name in INITS if name != "uniform"]
    if value == "uniform":
        raise Invalid(field, "give uniform(-r, r) as the number r, e.g. init: 0.3")
    if isinstance(value, str):
        return choice("init", names)(value, field)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise Invalid(
            field, f"must be a range r > 0 or one of {', '.join(names)}, got {show(value)}"
        )
    return positive_float(value, field)


def group_sizes(value: Any, field: str) -> list[int]:
    """A non-empty list of group sizes (ints >= 1), e.g. [24, 12]."""
    if not isinstance(value, list) or not value:
        raise Invalid(
            field, f"must be a non-empty list of group sizes (ints >= 1), got {show(value)}"
        )
    return [layer_size(size, f"{field}[{i}]") for i, size in enumerate(value)]


# Here, not at the top: schedule.py builds on ALIASES above (a circular import that works
# because it exists by now), and PARAMETERS below needs its checker.
from .schedule import schedule_check  # noqa: E402


@dataclass(frozen=True)
class Parameter:
    """One entry of the run configuration that a spec may set, fix or sweep."""

    name: str
    default: Any
    description: str
    check: Checker
    # "float" or "int" when random sweeps may draw it from a distribution; these use
    # bound_check on min and max (and on nothing else: a distribution draws numbers only).
    numeric: str | None = None
    bound_check: Checker | None = None
    # False for values that are lists themselves (schedule): a list is then the value.
    sweepable: bool = True


def _param(name, default, description, check, numeric=None, bound_check=None, sweepable=True):
    return Parameter(name, default, description, check, numeric, bound_check or check, sweepable)


PARAMETERS: dict[str, Parameter] = {
    p.name: p
    for p in [
        _param(
            "learning_rate",
            TRAINING_DEFAULTS["learning_rate"],
            "eps, the step size: dw = -eps dE/dw + alpha dw(t-1); > 0",
            positive_float,
            "float",
        ),
        _param(
            "momentum",
            TRAINING_DEFAULTS["momentum"],
            "alpha, the fraction of the previous weight change added; in [0, 1)",
            unit_interval,
            "float",
        ),
        _param(
            "hidden",
            2,
            "hidden layer sizes: an int is one layer, a list of ints is the layers ([] = none); "
            "a list of these sweeps architectures: [2, 4] tries one layer of 2 then of 4, "
            "[[4, 4]] fixes two layers of 4",
            hidden_check,
            "int",
            layer_size,
        ),
        _param(
            "cost",
            "sse",
            "sse = 1/2 sum (o - e)^2 as in the paper, mse = the mean, cross_entropy",
            choice("cost", COSTS),
        ),
        _param(
            "activation",
            "sigmoid",
            f"hidden units' f: {', '.join(ACTIVATIONS)}",
            choice("activation", ACTIVATIONS),
        ),
        _param(
            "output_activation",
            "sigmoid",
            f"output units' f: {', '.join(OUTPUT_ACTIVATIONS)}",
            choice("output_activation", OUTPUT_ACTIVATIONS),
        ),
        _param(
            "optimizer",
            TRAINING_DEFAULTS["optimizer"],
            f"weight update: {', '.join(OPTIMIZERS)} (sgd = the paper's momentum rule)",
            choice("optimizer", OPTIMIZERS),
        ),
        _param(
            "batch_size",
            "full",
            "patterns per weight update: full (the paper's sweep) or an int (1 = per pattern)",
            batch_size_check,
            "int",
            int_check(1, MAX_INT32),
        ),
        _param(
            "epochs",
            TRAINING_DEFAULTS["epochs"],
            "the most epochs (sweeps through the training set) to run; 1 to 1,000,000",
            epoch_count,
            "int",
        ),
        _param(
            "init",
            0.3,
            "initial weights: r > 0 for uniform(-r, r), or xavier, he",
            init_check,
            "float",
            positive_float,
        ),
        _param(
            "weight_decay",
            TRAINING_DEFAULTS["weight_decay"],
            "L2 coefficient lambda: dE/dw += lambda w (weights, not biases; scaled by eps and "
            "carried by momentum); >= 0",
            float_check(0.0),
            "float",
        ),
        _param(
            "decay",
            TRAINING_DEFAULTS["decay"],
            "after each weight change every weight is multiplied by (1 - decay), the 1986 "
            "paper's direct decrement (0.002 = its 0.2%); in [0, 1)",
            unit_interval,
            "float",
        ),
        _param(
            "decay_biases",
            TRAINING_DEFAULTS["decay_biases"],
            "whether decay also shrinks the biases (the paper's bias is a weight from an "
            "always-on unit)",
            boolean,
        ),
        _param(
            "error_margin",
            TRAINING_DEFAULTS["error_margin"],
            "dead zone: an output within this of its target (0.2: on-units above 0.8, "
            "off-units below 0.2) has no error and no delta; the loss reported is the plain "
            "cost; in [0, 1)",
            unit_interval,
            "float",
        ),
        _param(
            "skip_connections",
            False,
            "true: every layer also gets the outputs of all earlier layers and the input",
            boolean,
        ),
        _param(
            "input_groups",
            None,
            "split the inputs into consecutive groups of these sizes (e.g. [24, 12]), each "
            "feeding only its own block of the first hidden layer (see group_hidden); "
            "null = fully connected; one fixed value, not swept",
            nullable(group_sizes),
            sweepable=False,
        ),
        _param(
            "group_hidden",
            None,
            "with input_groups: the first hidden layer's block sizes, one per input group "
            "(e.g. [6, 6]; they add up to hidden[0]); one fixed value, not swept",
            nullable(group_sizes),
            sweepable=False,
        ),
        _param(
            "kernels",
            None,
            "a tied first layer (weight sharing, the T-C problem): this many shared kernels, "
            "each a field x field receptive field repeated over every position of the "
            "retina (a square image dataset); the hidden layers follow it; null = none",
            nullable(int_check(1, 1024)),
            "int",
            int_check(1, 1024),
        ),
        _param(
            "field",
            3,
            "with kernels: the side of each receptive field (3 = 3x3, as in the T-C problem)",
            int_check(1, 64),
            "int",
        ),
        _param(
            "wrap",
            False,
            "with kernels: true = the retina is a torus and a unit sits on every pixel; false "
            "= a unit wherever the field fits inside the retina",
            boolean,
        ),
        _param(
            "recurrent",
            False,
            "true: the one hidden layer also feeds itself, the net runs through a sequence "
            "dataset's steps and learns by backpropagation through time",
            boolean,
        ),
        _param(
            "stop_loss",
            TRAINING_DEFAULTS["stop_loss"],
            "stop when the loss falls below this (> 0); null = never",
            nullable(positive_float),
            "float",
            positive_float,
        ),
        _param(
            "stop_within",
            TRAINING_DEFAULTS["stop_within"],
            "'solved' = every output within this of its target (> 0); its first epoch is "
            "recorded; null = not tracked",
            nullable(positive_float),
            "float",
            positive_float,
        ),
        _param(
            "stop_on_solve",
            TRAINING_DEFAULTS["stop_on_solve"],
            "stop at the first solved epoch (needs stop_within)",
            boolean,
        ),
        _param(
            "patience",
            TRAINING_DEFAULTS["patience"],
            "stop a run after this many epochs without improvement of val_loss (loss without "
            "a validation split); 0 or null = never",
            nullable(int_check(0, MAX_EPOCHS)),
            "int",
            int_check(0, MAX_EPOCHS),
        ),
        _param(
            "min_delta",
            TRAINING_DEFAULTS["min_delta"],
            "with patience: an epoch improves when it is lower than the best by more than this",
            float_check(0.0),
            "float",
        ),
        _param(
            "restore_best",
            TRAINING_DEFAULTS["restore_best"],
            "true: a run ends with the weights of its best epoch (lowest val_loss, else loss)",
            boolean,
        ),
        _param(
            "validation_split",
            0.0,
            "fraction of patterns held out for validation; in [0, 1)",
            unit_interval,
            "float",
        ),
        _param(
            "log_every",
            1,
            "record every k-th epoch's metrics (the last epoch always); >= 1",
            epoch_count,
            "int",
        ),
        _param(
            "epoch_metrics",
            TRAINING_DEFAULTS["epoch_metrics"],
            "what each epoch's metrics and stop criteria describe: exact = the net after the "
            "epoch, over the whole training set; running = summed over the epoch's batches, "
            "each before its update, as scikit-learn and Keras report (no extra pass)",
            choice("epoch_metrics", EPOCH_METRICS),
        ),
        _param(
            "dtype",
            TRAINING_DEFAULTS["dtype"],
            "the floating-point type the net computes in (weights, activations, gradients, "
            "data): float64 or float32; stored weights keep it",
            choice("dtype", DTYPES),
        ),
        _param(
            "schedule",
            [],
            "phases [{until, learning_rate?, momentum?}]: these values hold up to epoch `until`, "
            "then the next phase's, then the base values; one fixed value, not swept",
            schedule_check,
            sweepable=False,
        ),
    ]
}

# Parameter.default is written as in a spec (hidden: 2); DEFAULTS holds the config values.
DEFAULTS: dict[str, Any] = {name: p.check(p.default, name) for name, p in PARAMETERS.items()}


def defaults_table() -> list[tuple[str, str, str]]:
    """(name, default as written in YAML, description) per parameter, for README and --help."""
    import json

    def yaml_text(value: Any) -> str:
        return json.dumps(value).replace('"', "") if not isinstance(value, str) else value

    return [(p.name, yaml_text(p.default), p.description) for p in PARAMETERS.values()]
