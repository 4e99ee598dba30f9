"""Checking a spec's `dataset` string against the engine's datasets, before any run.

Sizes are bounded here because parity:N, symmetry:N and addition:N grow as 2^N (or
4^N) patterns: a typo like parity:40 should be a spec error, not a worker out of memory.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from engine import DATASETS

from .errors import Invalid, show, unknown_name
from .shapes import check_data_file, data_shape

# name -> (smallest N, largest N) for the datasets written "name:N".
SIZED = {
    "parity": (1, 20),
    "symmetry": (2, 20),
    "encoder": (2, 4096),
    "addition": (1, 10),
    "timed_sequences": (0, 20),
}
FILE_KINDS = ("csv", "npz")
NEEDS_SKLEARN = ("digits", "iris")


def _kinds() -> dict[str, str]:
    """base name -> "plain" | "sized" | "file", from the engine's table of names."""
    kinds: dict[str, str] = {}
    for key in DATASETS:
        base, sep, _ = str(key).partition(":")
        if base in FILE_KINDS:
            kinds[base] = "file"
        elif sep or base in SIZED:
            kinds[base] = "sized"
        else:
            kinds[base] = "plain"
    return kinds


def _spellings(kinds: dict[str, str]) -> list[str]:
    forms = {"plain": "{}", "sized": "{}:N", "file": "{}:PATH"}
    return [forms[kind].format(base) for base, kind in sorted(kinds.items())]


def check_dataset(value: object, base_dir: Path, field: str = "dataset") -> str:
    """The dataset name as the run configuration holds it (file paths made absolute)."""
    kinds = _kinds()
    if value is None:
        raise Invalid(field, f"missing: name a dataset ({', '.join(_spellings(kinds))})")
    if not isinstance(value, str) or not value.strip():
        raise Invalid(
            field, f"must be a dataset name ({', '.join(_spellings(kinds))}), got {show(value)}"
        )
    base, sep, arg = value.strip().partition(":")
    kind = kinds.get(base)
    if kind is None:
        raise Invalid(field, unknown_name("dataset", value, _spellings(kinds)))
    if kind == "plain":
        if sep:
            raise Invalid(field, f"{base!r} takes no argument, got {value!r}")
        if base in NEEDS_SKLEARN and importlib.util.find_spec("sklearn") is None:
            raise Invalid(
                field,
                f"{base!r} needs scikit-learn, which is not installed; "
                "install the bench extra: pip install 'bplab[bench]'",
            )
        return base
    if kind == "sized":
        low, high = SIZED.get(base, (1, None))
        limits = f"an integer N in [{low}, {high}]" if high else f"an integer N >= {low}"
        try:
            n = int(arg)
        except ValueError:
            raise Invalid(field, f"{base}:N needs {limits}, got {value!r}") from None
        if n < low or (high is not None and n > high):
            raise Invalid(field, f"{base}:N needs {limits}, got {value!r}")
        return f"{base}:{n}"
    if not arg.strip():
        raise Invalid(field, f"{base}:PATH needs a file path, got {value!r}")
    path = Path(arg.strip()).expanduser()
    if not path.is_absolute():
        # Relative to the spec, not to wherever the command happens to run.
        path = base_dir / path
    path = path.resolve()
    if not path.is_file():
        raise Invalid(
            field, f"file not found: {path} ({base}:PATH is relative to the spec's directory)"
        )
    check_data_file(base, path, field)  # read it now: a bad cell is a spec error, not a run's
    return f"{base}:{path}"


def input_width(dataset: str) -> int | None:
    """The number of inputs of a checked dataset name."""
    shape = data_shape(dataset)
    return shape.inputs if shape else None
