"""Tabular output for the CLI: one function renders rows as a rich table, JSON or CSV."""

from __future__ import annotations

import csv
import io
import json
import math
import os
import re
import sys
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from rich.table import Table

FORMATS = ("table", "json", "csv")
_WIDE = "bplab.wide"
# One timestamp style everywhere (tables, JSON, CSV): ISO 8601 in UTC to the second.
_ISO = re.compile(r"^\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d(\.\d+)?([+-]\d\d:\d\d|Z)?$")


def _remember_wide(ctx: click.Context, _param: click.Parameter, value: bool) -> bool:
    ctx.meta[_WIDE] = value
    return value


_format = click.option(
    "--format",
    "fmt",
    type=click.Choice(FORMATS),
    default="table",
    show_default=True,
    help="Output format.",
)
# Not passed to the command: print_table reads it from the context, so every command with
# --format gets --wide without a new parameter.
_wide_option = click.option(
    "--wide",
    is_flag=True,
    expose_value=False,
    callback=_remember_wide,
    help="Table: every column, however wide [default: fit the terminal, with a note].",
)


def format_option(command: Any) -> Any:
    """--format table|json|csv and --wide, for any command that prints rows."""
    return _format(_wide_option(command))


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
    drop: Sequence[str] = (),
) -> None:
    """Print rows (dicts with the same keys) in the chosen format to standard output; a table
    too wide for the terminal leaves out the columns in ``drop`` first (see print_table)."""
    columns = list(columns) if columns is not None else (list(rows[0]) if rows else [])
    if fmt == "json":
        click.echo(json.dumps([_jsonable(dict(r)) for r in rows], indent=2, default=str))
    elif fmt == "csv":
        click.echo(to_csv(rows, columns), nl=False)
    else:
        print_table(rows, columns, title=title, drop=drop)


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
    rows: Sequence[Mapping[str, Any]],
    columns: Sequence[str],
    *,
    title: str | None = None,
    drop: Sequence[str] = (),
) -> None:
    """A rich table that fits the terminal: columns are left out (those in ``drop`` first,
    then from the right, never the first two) and named in a note; --wide keeps them all.

    Only a terminal (or COLUMNS) sets a width: piped into a file or a log, the table is
    printed whole, as wide as it is.
    """
    from rich.console import Console

    shown = list(columns)
    width = None if _wide() else _terminal_width()
    table = _table(rows, shown, title)
    natural = _natural_width(table)
    hidden: list[str] = []
    order = [c for c in drop if c in shown] + shown[::-1]
    while width is not None and natural > width and len(shown) > 2:
        victim = next(c for c in order if c in shown and shown.index(c) >= 2)
        shown.remove(victim)
        hidden.insert(0, victim)
        table = _table(rows, shown, title)
        natural = _natural_width(table)
    Console(width=max(natural, width or 0), soft_wrap=False).print(table)
    if hidden:
        hidden.sort(key=list(columns).index)
        import textwrap

        note = f"({len(hidden)} column(s) left out: {', '.join(hidden)}; --wide shows all)"
        click.echo(textwrap.fill(note, width=width or 80))


def _table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str], title: str | None) -> Table:
    from rich.table import Table
    from rich.text import Text

    table = Table(title=title, header_style="bold")
    for col in columns:
        table.add_column(col, justify="right" if _numeric_column(rows, col) else "left")
    for row in rows:
        # Text, not str: cells hold data (a run's error, a dataset's install hint such as
        # 'bplab[bench]'), never rich markup, which would eat anything in brackets.
        table.add_row(*(Text(format_cell(row.get(c))) for c in columns))
    return table


def _natural_width(table: Table) -> int:
    """The width the table takes with no cell wrapped."""
    from rich.console import Console

    console = Console(width=100_000)
    return console.measure(table).maximum


def _wide() -> bool:
    ctx = click.get_current_context(silent=True)  # meta is one dict for the whole command
    return bool(ctx is not None and ctx.meta.get(_WIDE, False))


def stamp(value: Any) -> Any:
    """A datetime (or an ISO 8601 string of one) in bplab's one style: 2026-12-03T09:21:06Z."""
    import datetime as dt

    if isinstance(value, str) and _ISO.match(value):
        try:
            value = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return value
    if isinstance(value, dt.datetime):
        if value.tzinfo is not None:
            value = value.astimezone(dt.UTC)
        return value.strftime("%Y-%m-%dT%H:%M:%SZ")
    return value


def format_cell(value: Any) -> str:
    value = stamp(value)
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
    value = stamp(value)
    if isinstance(value, list | tuple | dict):
        return json.dumps(value)
    return "" if value is None else value


def _jsonable(value: Any) -> Any:
    """JSON has no NaN or infinity: write them as strings so every reader can parse the output."""
    if isinstance(value, float) and (math.isnan(value) or math.isinf(value)):
        return str(value)
    value = stamp(value)
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


def _terminal_width() -> int | None:
    """COLUMNS, else the terminal's width; None when standard output is not a terminal."""
    columns = os.environ.get("COLUMNS", "")
    if columns.isdigit() and int(columns) > 0:
        return int(columns)
    if sys.stdout.isatty():
        import shutil

        return shutil.get_terminal_size((80, 24)).columns
    return None
