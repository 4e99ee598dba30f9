"""The database's failures as the CLI reports them: one line, the password masked.

Every command reaches the database through service.db.session; whatever goes wrong there (a
URL that does not parse, an unknown scheme, a server that does not answer, a database that
does not exist or is not migrated, a file that is not a database, another process's write
lock) arrives here as an exception and leaves as one line with an exit code, instead of a
40 to 150 line traceback. Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import click
from sqlalchemy.engine import make_url
from sqlalchemy.exc import (
    ArgumentError,
    DBAPIError,
    NoSuchModuleError,
    OperationalError,
    SQLAlchemyError,
)

from service.config import mask_url
from service.db.session import (
    DatabaseMissing,
    SchemaNotReady,
    busy_timeout_ms,
    sqlite_file,
)
from service.errors import BadInput

SCHEMES = "sqlite:///PATH or postgresql://USER@HOST/DATABASE"


class DatabaseBusy(click.ClickException):
    """Another process held the SQLite write lock for the whole busy timeout: try again.

    Exit code 1, not 2: nothing is wrong with what the user typed.
    """

    exit_code = 1


def database_failure(exc: BaseException, url: str) -> click.ClickException | None:
    """The one-line error for a database failure of a command on url; None: not one."""
    if isinstance(exc, DatabaseMissing | SchemaNotReady):
        return BadInput(str(exc))
    if not isinstance(exc, SQLAlchemyError | ValueError | TypeError):
        return None
    shown = mask_url(url)
    bad_url = _url_problem(url)
    if bad_url is not None:
        # a value that does not parse cannot be masked (and may be a pasted password): not shown
        named = (
            "BPLAB_DATABASE_URL"
            if "not a database URL" in bad_url
            else f"BPLAB_DATABASE_URL {shown}"
        )
        return BadInput(f"{named}: {bad_url}; bplab stores results in {SCHEMES}")
    if isinstance(exc, ArgumentError | NoSuchModuleError):
        return BadInput(f"BPLAB_DATABASE_URL {shown}: {_first_line(exc)}")
    if not isinstance(exc, DBAPIError):
        return None  # a ValueError of a usable URL is not the database's: a bug, traceback
    cause = _first_line(exc.orig if exc.orig is not None else exc)
    path = _sqlite_path(url)
    if path is None:
        verb = "reach" if isinstance(exc, OperationalError) else "use"
        return BadInput(f"cannot {verb} database {shown}: {cause}")
    if "database is locked" in cause or "database is busy" in cause:
        return DatabaseBusy(
            f"the database {path} is locked: another process kept writing to it for "
            f"{busy_timeout_ms() / 1000:g} s; try again when it is done "
            "(BPLAB_SQLITE_BUSY_TIMEOUT sets the wait)"
        )
    if "unable to open database file" in cause and not path.parent.is_dir():
        return BadInput(f"cannot open database {shown}: directory {path.parent} does not exist")
    if "file is not a database" in cause:
        return BadInput(f"cannot open database {shown}: {path} is not a SQLite database")
    return BadInput(f"cannot use database {shown}: {cause}")


def _url_problem(url: str) -> str | None:
    """What is wrong with the URL itself, before any connection; None when it is usable."""
    try:
        sa_url = make_url(url)
    except ArgumentError:
        return "not a database URL"
    except ValueError as exc:  # e.g. a port that is not a number
        return f"not a database URL ({_first_line(exc)})"
    try:
        sa_url.get_dialect()
    except NoSuchModuleError:
        return f"unknown database scheme {sa_url.drivername!r}"
    except ImportError as exc:
        return f"the driver for {sa_url.drivername!r} is not installed ({exc.name})"
    return None


def _sqlite_path(url: str):  # noqa: ANN202 - Path | None
    try:
        return sqlite_file(url)
    except (ArgumentError, ValueError):
        return None


def _first_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
    line = lines[0] if lines else type(exc).__name__
    # libpq: 'connection to server at "h", port 5432 failed: FATAL:  database "x" does not
    # exist': the part after FATAL is the cause; the server and port are in the masked URL.
    return line.rpartition("FATAL:")[2].strip() if "FATAL:" in line else line
