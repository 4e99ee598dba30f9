"""The spec keys of nets with shared weights (kernels, field, wrap, recurrent), checked
against each other and the dataset before anything runs (issue 21).

Every value an axis takes is checked, as ``combinations`` does: a swept value is as wrong
as a fixed one.
"""

from __future__ import annotations

import math

from .errors import Invalid
from .shapes import data_shape
from .sweep import Axis

SEQUENCE_DATASETS = ("sequences", "timed_sequences")


def _retina(dataset: str) -> tuple[int, int] | None:
    """(height, width) of the dataset's inputs as an image; None when they are no square
    (every image dataset so far is square: tc 6x6, digits 8x8)."""
    shape = data_shape(dataset)
    if shape is None:
        return None
    side = math.isqrt(shape.inputs)
    return (side, side) if side * side == shape.inputs else None


def check_architecture(axes: dict[str, Axis], dataset: str) -> None:
    """Raise Invalid for the first tied or recurrent setting that cannot build a net."""
    kernels = [k for k in axes["kernels"].values if k is not None]
    recurrent = True in axes["recurrent"].values
    if axes["kernels"].distribution is not None:
        kernels = [1]  # drawn: some value will be set
    fields = axes["field"].values if axes["field"].distribution is None else ()
    if not kernels and (set(fields) - {3} or True in axes["wrap"].values):
        which = "field" if set(fields) - {3} else "wrap"
        raise Invalid(f"parameters.{which}", "only used with kernels (a tied first layer)")
    if kernels and recurrent:
        raise Invalid("parameters.recurrent", "cannot go with kernels: one or the other")
    if (kernels or recurrent) and True in axes["skip_connections"].values:
        which = "kernels" if kernels else "recurrent"
        raise Invalid(f"parameters.{which}", "cannot go with skip_connections: true")
    if (kernels or recurrent) and axes["input_groups"].values != (None,):
        which = "kernels" if kernels else "recurrent"
        raise Invalid(f"parameters.{which}", "cannot go with input_groups")
    if kernels:
        _check_tied(axes, dataset, fields)
    if recurrent:
        _check_recurrent(axes, dataset)


def _check_tied(axes: dict[str, Axis], dataset: str, fields: tuple[int, ...]) -> None:
    retina = _retina(dataset)
    if retina is None:
        shape = data_shape(dataset)
        inputs = f"{shape.inputs} inputs" if shape else "inputs of unknown number"
        raise Invalid(
            "parameters.kernels",
            f"needs an image dataset (a square retina, e.g. tc or digits); {dataset} has {inputs}",
        )
    for field in fields:
        if field > min(retina):
            raise Invalid(
                "parameters.field",
                f"{field}x{field} fields do not fit the {retina[0]}x{retina[1]} retina of "
                f"{dataset}",
            )


def _check_recurrent(axes: dict[str, Axis], dataset: str) -> None:
    if dataset.partition(":")[0] not in SEQUENCE_DATASETS:
        raise Invalid(
            "parameters.recurrent",
            f"needs a sequence dataset ({', '.join(SEQUENCE_DATASETS)}), got {dataset}",
        )
    hidden = axes["hidden"]
    for value in hidden.values if hidden.distribution is None else ():
        if len(value) != 1:
            raise Invalid(
                "parameters.hidden",
                f"a recurrent net has exactly one hidden layer (the recurrent one), got {value}",
            )
    if "softmax" in axes["output_activation"].values:
        raise Invalid(
            "parameters.output_activation",
            "softmax is not offered for recurrent nets (the outputs of every step would "
            "need their own); use sigmoid",
        )
