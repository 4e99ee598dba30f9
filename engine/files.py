"""User data files: ``csv:PATH`` and ``npz:PATH``. Errors name the file and the problem."""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np

Array = np.ndarray


def _fail(path: Path, problem: str) -> ValueError:
    return ValueError(f"{path}: {problem}")


def load_csv(
    path: str | Path, targets: Sequence[str | int] | str | int | None = None
) -> tuple[Array, Array, list[str] | None, list[str] | None]:
    """Numbers from a CSV file; an optional first row of column names is detected.

    ``targets``: column names or indexes holding the targets (default: the last column).
    """
    path = Path(path)
    try:
        with path.open(newline="") as fh:
            rows = [r for r in csv.reader(fh) if r and any(c.strip() for c in r)]
    except OSError as exc:
        raise _fail(path, f"cannot read file ({exc.strerror or exc})") from None
    except UnicodeDecodeError:
        raise _fail(path, "not a text CSV file") from None
    if not rows:
        raise _fail(path, "empty file")
    header: list[str] | None = None
    try:
        [float(c) for c in rows[0]]
    except ValueError:
        header, rows = [c.strip() for c in rows[0]], rows[1:]
    if not rows:
        raise _fail(path, "no data rows")
    width = len(header) if header else len(rows[0])
    data = np.empty((len(rows), width))
    for r, row in enumerate(rows):
        line = r + (2 if header else 1)
        if len(row) != width:
            raise _fail(path, f"line {line} has {len(row)} columns, expected {width}")
        for c, cell in enumerate(row):
            try:
                value = float(cell)
            except ValueError:
                raise _fail(path, f"line {line}, column {c + 1}: not a number: {cell!r}") from None
            if not math.isfinite(value):
                raise _fail(path, f"line {line}, column {c + 1}: not a finite number")
            data[r, c] = value
    if width < 2:
        raise _fail(path, "needs at least one input and one target column")
    if targets is None:
        cols = [width - 1]
    else:
        wanted = [targets] if isinstance(targets, str | int) else list(targets)
        cols = []
        for t in wanted:
            if isinstance(t, int) and not isinstance(t, bool):
                if not -width <= t < width:
                    raise _fail(path, f"target column {t} out of range (file has {width})")
                cols.append(t % width)
            elif header is not None and t in header:
                cols.append(header.index(t))
            else:
                known = ", ".join(header) if header else "none (no header row)"
                raise _fail(path, f"no column named {t!r}; columns: {known}")
        if len(set(cols)) != len(cols) or len(cols) >= width:
            raise _fail(path, "targets must be distinct and leave at least one input column")
    inputs = [c for c in range(width) if c not in cols]
    names_in = [header[c] for c in inputs] if header else None
    names_out = [header[c] for c in cols] if header else None
    return data[:, inputs], data[:, cols], names_in, names_out


def load_npz(path: str | Path) -> tuple[Array, Array]:
    """Arrays ``X`` (n, d_in) and ``Y`` (n, d_out) (or ``y`` (n,)) from an .npz file."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as z:
            files = set(z.files)
            if "X" not in files or not ({"Y", "y"} & files):
                raise _fail(path, f"needs arrays 'X' and 'Y' (or 'y'); found {sorted(files)}")
            X = z["X"]
            Y = z["Y"] if "Y" in files else z["y"]
    except OSError as exc:
        raise _fail(path, f"cannot read file ({exc.strerror or exc})") from None
    except ValueError as exc:
        if str(exc).startswith(str(path)):
            raise
        raise _fail(path, f"not a readable .npz without pickles ({exc})") from None
    except Exception as exc:  # zipfile.BadZipFile and friends
        raise _fail(path, f"not an .npz archive ({type(exc).__name__})") from None
    if Y.ndim == 1:
        Y = Y[:, None]
    if X.ndim != 2 or Y.ndim != 2:
        raise _fail(path, f"X must be 2-D and Y 1-D or 2-D; got {X.shape} and {Y.shape}")
    if X.shape[0] != Y.shape[0]:
        raise _fail(path, f"X has {X.shape[0]} rows but Y has {Y.shape[0]}")
    try:
        X, Y = X.astype(np.float64), Y.astype(np.float64)
    except (TypeError, ValueError):
        raise _fail(path, "X and Y must be numeric") from None
    if not (np.isfinite(X).all() and np.isfinite(Y).all()):
        raise _fail(path, "X and Y must be finite")
    return X, Y
