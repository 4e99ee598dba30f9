"""Tabular output for the CLI: one function renders rows as a rich table, JSON or CSV."""

from __future__ import annotations

import csv
import io
import json
import math
import os
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table
from rich.text import Text

FORMATS = ("table", "json", "csv")

format_option = click.option(
    "--format",
    "fmt",
    type=click.Choice(FORMATS),
    default="table",
    show_default=True,
    help="Output format.",
)


def output_path(path: str) -> Path:
    """An -o file checked before any work: one line, exit 2, when it cannot be written.

    Checked here rather than by click.Path, whose refusal is three lines of usage; a failure
    the checks cannot foresee (a full disk, /proc) is caught by writing_to.
    """
    from service.errors import BadInput

    file = Path(path).expanduser()
    parent = file.absolute().parent
    if file.is_dir():
        raise BadInput(f"-o {path}: is a directory; name a file in it")
    if not parent.is_dir():
        raise BadInput(f"-o {path}: directory {parent} does not exist")
    if not os.access(parent, os.W_OK) or (file.exists() and not os.access(file, os.W_OK)):
        raise BadInput(f"-o {path}: permission denied")
    return file


@contextmanager
def writing_to(path: str | Path) -> Iterator[None]:
    """Turn an OSError while writing path into one line, exit 2."""
    from service.errors import BadInput

    try:
        yield
    except OSError as exc:
        raise BadInput(f"cannot write {path}: {exc.strerror or exc}") from None


def render(
    rows: Sequence[Mapping[str, Any]],
    fmt: str = "table",
    *,
    columns: Sequence[str] | None = None,
    title: str | None = None,
) -> None:
    """Print rows (dicts with the same keys) in the chosen format to standard output."""
    columns = list(columns) if columns is not None else (list(rows[0]) if rows else [])
    if fmt == "json":
        click.echo(json.dumps([_jsonable(dict(r)) for r in rows], indent=2, default=str))
    elif fmt == "csv":
        click.echo(to_csv(rows, columns), nl=False)
    else:
        print_table(rows, columns, title=title)


def to_csv(rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(
        buf, fieldnames=list(columns), extrasaction="ignore", lineterminator="\n"
    )
    writer.writeheader()
    for row in rows:
        writer.writerow({c: _csv_cell(row.get(c)) for c in columns})
    return buf.getvalue()


def print_table(
    rows: Sequence[Mapping[str, Any]], columns: Sequence[str], *, title: str | None = None
) -> None:
    table = Table(title=title, header_style="bold")
    for col in columns:
        table.add_column(col, justify="right" if _numeric_column(rows, col) else "left")
    for row in rows:
        # Text, not str: cells hold data (a run's error, a dataset's install hint such as
        # 'bplab[bench]'), never rich markup, which would eat anything in brackets.
        table.add_row(*(Text(format_cell(row.get(c))) for c in columns))
    # soft_wrap off and a generous width: tables are read in terminals and in piped logs alike.
    Console(width=max(100, _terminal_width())).print(table)


def format_cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            return str(value)
        if value != 0 and (abs(value) < 1e-3 or abs(value) >= 1e5):
            return f"{value:.3e}"
        return f"{value:.4g}"
    if isinstance(value, list | tuple):
        return "-".join(str(v) for v in value) if value else "none"
    if isinstance(value, dict):
        return json.dumps(value, sort_keys=True)
    return str(value)


def _csv_cell(value: Any) -> Any:
    if isinstance(value, list | tuple | dict):
        return json.dumps(value)
    return "" if value is None else value


def _jsonable(value: Any) -> Any:
    """JSON has no NaN or infinity: write them as strings so every reader can parse the output."""
    if isinstance(value, float) and (math.isnan(value) or math.isinf(value)):
        return str(value)
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


def _numeric_column(rows: Sequence[Mapping[str, Any]], col: str) -> bool:
    values = [r.get(col) for r in rows if r.get(col) is not None]
    return bool(values) and all(
        isinstance(v, int | float) and not isinstance(v, bool) for v in values
    )


def _terminal_width() -> int:
    import shutil

    return shutil.get_terminal_size((160, 24)).columns
