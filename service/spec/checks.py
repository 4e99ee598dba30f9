"""The value checkers of spec fields: each takes one value as written in the spec plus the
field path for messages, and returns the normalised value or raises Invalid."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from .errors import Invalid, show, unknown_name

Checker = Callable[[Any, str], Any]


def number(value: Any, field: str) -> float:
    # bool is an int subclass in Python; `true` is never meant as 1.
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise Invalid(field, f"must be a number, got {show(value)}")
    if not math.isfinite(value):
        raise Invalid(field, f"must be a finite number, got {show(value)}")
    return float(value)


def integer(value: Any, field: str) -> int:
    # YAML's 1e3 and JSON's 1000.0 are floats; accept them when they are whole numbers.
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise Invalid(field, f"must be an integer, got {show(value)}")
    return value


def float_check(low: float, *, low_open: bool = False, high_open: float | None = None) -> Checker:
    """A checker for a finite float in [low, high_open), or (low, ...) when low_open."""
    if high_open is not None:
        requirement = f"in [{low:g}, {high_open:g})"
    else:
        requirement = f"{'>' if low_open else '>='} {low:g}"

    def check(value: Any, field: str) -> float:
        try:
            x = number(value, field)
        except Invalid as exc:
            raise Invalid(
                field, exc.message.replace("number", f"number {requirement}", 1)
            ) from None
        too_low = x <= low if low_open else x < low
        if too_low or (high_open is not None and x >= high_open):
            raise Invalid(field, f"must be {requirement}, got {show(value)}")
        return x

    return check


# Upper bounds, so that a typo (epochs: 1e12, hidden: 1e8, a seed of 1e23) is a spec error
# and not a MemoryError or OverflowError minutes later. The run columns are 32-bit integers
# on PostgreSQL, which bounds seeds and batch sizes; a million epochs of the smallest net
# take minutes and store a million epoch rows per run; a layer of 100,000 units on the
# 64-input digits set already needs 50 MB per weight matrix and copy.
MAX_INT32 = 2**31 - 1
MAX_EPOCHS = 1_000_000
MAX_UNITS = 100_000


def int_check(low: int, high: int | None = None) -> Checker:
    requirement = f"an integer >= {low}" if high is None else f"an integer in [{low}, {high:,}]"

    def check(value: Any, field: str) -> int:
        try:
            n = integer(value, field)
        except Invalid:
            n = None
        if n is None or n < low or (high is not None and n > high):
            raise Invalid(field, f"must be {requirement}, got {show(value)}")
        return n

    return check


def nullable(check: Checker) -> Checker:
    def nullable_check(value: Any, field: str) -> Any:
        return None if value is None else check(value, field)

    return nullable_check


def choice(kind: str, names: Any) -> Checker:
    allowed = tuple(names)

    def check(value: Any, field: str) -> str:
        if not isinstance(value, str):
            raise Invalid(field, f"must be one of {', '.join(sorted(allowed))}, got {show(value)}")
        if value not in allowed:
            raise Invalid(field, unknown_name(kind, value, allowed))
        return value

    return check


def boolean(value: Any, field: str) -> bool:
    if not isinstance(value, bool):
        raise Invalid(field, f"must be true or false, got {show(value)}")
    return value


positive_int = int_check(1)
epoch_count = int_check(1, MAX_EPOCHS)
layer_size = int_check(1, MAX_UNITS)
seed_check = int_check(0, MAX_INT32)
positive_float = float_check(0.0, low_open=True)
unit_interval = float_check(0.0, high_open=1.0)  # [0, 1)
