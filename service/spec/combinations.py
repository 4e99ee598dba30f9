"""Configurations that would run but cannot mean anything, refused at validation.

Each check looks at every value an axis takes (a swept value is as wrong as a fixed one)
against the dataset's shape, and names the field and the way out.
"""

from __future__ import annotations

from typing import Any

from .errors import Invalid
from .shapes import data_shape
from .sweep import Axis


def check_combinations(axes: dict[str, Axis], dataset: str) -> None:
    """Raise Invalid for the first configuration of the sweep that makes no sense."""
    shape = data_shape(dataset)
    outputs = set(axes["output_activation"].values)
    costs = set(axes["cost"].values)
    if "cross_entropy" in costs and "identity" in outputs:
        # the cost takes log(o) and log(1 - o): undefined for an unbounded output
        raise Invalid(
            "parameters.output_activation",
            "identity outputs with cost cross_entropy: the cost is defined only for outputs "
            "in (0, 1); use sigmoid or softmax outputs, or cost sse/mse",
        )
    if shape is None:
        return
    if "softmax" in outputs and shape.outputs < 2:
        # one softmax unit always outputs exactly 1: a constant net that looks 100% right
        raise Invalid(
            "parameters.output_activation",
            f"softmax on {dataset}, which has 1 output unit: its output is always 1; "
            "use sigmoid for one output",
        )
    if "softmax" in outputs and not shape.rows_are_distributions:
        raise Invalid(
            "parameters.output_activation",
            f"softmax outputs sum to 1, but the target rows of {dataset} do not (they are not "
            "one-hot); use sigmoid outputs",
        )
    bounded = outputs & {"sigmoid", "softmax"} or ("cross_entropy" in costs and outputs)
    if bounded and (shape.target_min < 0.0 or shape.target_max > 1.0):
        field = "parameters.cost" if "cross_entropy" in costs else "parameters.output_activation"
        raise Invalid(
            field,
            f"the targets of {dataset} lie in [{shape.target_min:g}, {shape.target_max:g}], "
            f"out of reach of outputs in (0, 1) ({_named(outputs, costs)}); "
            "use output_activation: identity with cost sse or mse, or rescale the targets",
        )
    _check_validation(axes["validation_split"].values, shape.patterns, dataset)


def _named(outputs: set[Any], costs: set[Any]) -> str:
    names = sorted(outputs & {"sigmoid", "softmax"})
    if "cross_entropy" in costs:
        names.append("cross_entropy")
    return ", ".join(names)


def _check_validation(fractions: tuple[Any, ...], patterns: int, dataset: str) -> None:
    for fraction in fractions:
        if fraction and patterns < 2:
            raise Invalid(
                "parameters.validation_split",
                f"{dataset} has {patterns} pattern: none can be held out for validation",
            )
