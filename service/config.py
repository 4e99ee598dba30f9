"""One settings object: every ``BPLAB_*`` variable is read here, and only here.

``VARIABLES`` is the table: one entry per variable with its type, default and one-line meaning.
``Settings`` holds one field per entry (the name in lower case without ``BPLAB_``), and
``load_settings`` fills it from, highest first:

1. an override mapping passed by code (the CLI's ``--db`` option, field names as keys),
2. the environment (a variable set to the empty string means its default, hiding the file),
3. ``bplab.toml`` in the working directory, then ``bplab/bplab.toml`` in the user's config
   directory (``$XDG_CONFIG_HOME``, else ``~/.config``), keys as the Settings fields,
4. the table's default.

Every value is checked when it is read: a bad one is a ``SettingsError`` of one line naming the
variable (and the file it came from). The README's "Settings" table lists the same entries;
tests/test_settings.py holds the two together.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any
from urllib.parse import unquote_plus

DEFAULT_DATABASE_URL = "sqlite:///bplab.db"
DEFAULT_SQL_ROLE = "bplab_reader"
DEFAULT_QUEUE = "bplab"
# Redis re-delivers a message that stays unacknowledged this long (late acks: the ack comes after
# training). The task time limits must stay below it, or a long run would be trained twice at once.
DEFAULT_VISIBILITY_TIMEOUT_S = 2 * 60 * 60
# A task past its soft limit is handed back with its checkpoints; past the hard limit its process
# is killed. Both follow a lowered visibility timeout when unset (Settings.__post_init__).
DEFAULT_SOFT_TIME_LIMIT_S = 100 * 60
DEFAULT_TIME_LIMIT_S = 110 * 60
CONFIG_FILE_NAME = "bplab.toml"


class SettingsError(ValueError):
    """A value bplab must not run with; the one-line message names the variable to fix."""


@dataclass(frozen=True)
class Variable:
    """One ``BPLAB_*`` variable: how to read it, its default and what it means."""

    name: str
    parse: Callable[[Variable, object], Any]
    default: Any
    meaning: str
    # Inclusive lower bound for numbers; None for none.
    minimum: float | None = None
    # How the README shows a default that is computed or absent.
    shown_default: str | None = None

    @property
    def field(self) -> str:
        return self.name.removeprefix("BPLAB_").lower()

    @property
    def default_text(self) -> str:
        if self.shown_default is not None:
            return self.shown_default
        if isinstance(self.default, float) and self.default.is_integer():
            return str(int(self.default))
        return str(self.default)


def _text(var: Variable, raw: object) -> str:
    if not isinstance(raw, str):
        raise SettingsError(f"{var.name} must be a string, got {raw!r}")
    return raw


def _integer(var: Variable, raw: object) -> int:
    if isinstance(raw, bool) or not isinstance(raw, int | str):
        raise SettingsError(f"{var.name} must be an integer, got {raw!r}")
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{var.name} must be an integer, got {raw!r}") from None
    if var.minimum is not None and value < var.minimum:
        raise SettingsError(f"{var.name} must be at least {var.minimum:g}, got {raw!r}")
    return value


def _seconds(var: Variable, raw: object) -> float:
    if isinstance(raw, bool) or not isinstance(raw, int | float | str):
        raise SettingsError(f"{var.name} must be a number, got {raw!r}")
    try:
        value = float(raw)
    except ValueError:
        raise SettingsError(f"{var.name} must be a number, got {raw!r}") from None
    if value != value or value in (float("inf"), float("-inf")):
        raise SettingsError(f"{var.name} must be a finite number, got {raw!r}")
    # minimum None: strictly positive (a zero lease or time limit would stop everything).
    if var.minimum is None and value <= 0:
        raise SettingsError(f"{var.name} must be positive, got {raw!r}")
    if var.minimum is not None and value < var.minimum:
        raise SettingsError(f"{var.name} must be {var.minimum:g} or more, got {raw!r}")
    return value


def _run_ids(var: Variable, raw: object) -> frozenset[int]:
    parts = [p for p in str(raw).replace(" ", "").split(",") if p]
    try:
        return frozenset(int(p) for p in parts)
    except ValueError:
        raise SettingsError(f"{var.name} must be comma-separated run ids, got {raw!r}") from None


_V = Variable
VARIABLES: tuple[Variable, ...] = (
    _V("BPLAB_DATABASE_URL", _text, DEFAULT_DATABASE_URL,
       "where results live: a SQLAlchemy URL (SQLite file or PostgreSQL)"),
    _V("BPLAB_BROKER_URL", _text, None,
       "the Celery broker (Redis); unset, sweeps run in a local process pool",
       shown_default="none"),
    _V("BPLAB_SQL_ROLE", _text, DEFAULT_SQL_ROLE,
       "the SELECT-only PostgreSQL role `bplab sql` logs in as (created by migration 0005)"),
    _V("BPLAB_SQL_PASSWORD", _text, None,
       "that role's password, for servers that ask for one", shown_default="none"),
    _V("BPLAB_SQL_URL", _text, None,
       "a complete URL `bplab sql` uses instead of the database URL with that role",
       shown_default="none"),
    _V("BPLAB_SQLITE_BUSY_TIMEOUT", _seconds, 30.0,
       "seconds a SQLite writer waits for another process's write lock", minimum=0),
    _V("BPLAB_QUEUE", _text, DEFAULT_QUEUE,
       "the Celery queue bplab's tasks go to (lets deployments share one Redis)"),
    _V("BPLAB_VISIBILITY_TIMEOUT", _seconds, float(DEFAULT_VISIBILITY_TIMEOUT_S),
       "seconds before Redis re-delivers an unacknowledged task"),
    _V("BPLAB_TASK_TIME_LIMIT", _seconds, None,
       "a task's hard time limit in seconds; must stay below the visibility timeout",
       shown_default="6600, or 0.9 x the visibility timeout if lower"),
    _V("BPLAB_TASK_SOFT_TIME_LIMIT", _seconds, None,
       "seconds after which a task hands its runs back with their checkpoints",
       shown_default="6000, or 0.9 x the hard limit if lower"),
    _V("BPLAB_WORKER_CONCURRENCY", _integer, None,
       "processes of `bplab worker` (its --concurrency option)", minimum=1,
       shown_default="the number of cores"),
    _V("BPLAB_POPULATION_SIZE", _integer, 64,
       "runs trained together as one population task; 1 turns populations off", minimum=1),
    _V("BPLAB_LEASE_SECONDS", _seconds, 60.0,
       "a running run whose heartbeat is older than this belongs to a dead worker"),
    _V("BPLAB_MAX_ATTEMPTS", _integer, 3,
       "tries per run (since its last `sweep retry`) before it is failed", minimum=1),
    _V("BPLAB_DB_RETRY_SECONDS", _seconds, 60.0,
       "how long a worker retries a database write that lost its connection", minimum=0),
    _V("BPLAB_REQUEUE_GRACE_SECONDS", _seconds, 60.0,
       "a queued run missing from the broker is re-published only after this long", minimum=0),
    _V("BPLAB_RECONCILE_SECONDS", _seconds, None,
       "how often each worker runs the reconciler", shown_default="BPLAB_LEASE_SECONDS / 4"),
    _V("BPLAB_CHECKPOINT_EVERY", _integer, 500,
       "epochs between a run's checkpoints; 0 takes none", minimum=0),
    _V("BPLAB_CHECKPOINT_SECONDS", _seconds, 10.0,
       "training seconds between two checkpoints (0: every BPLAB_CHECKPOINT_EVERY epochs)",
       minimum=0),
    _V("BPLAB_TEST_CRASH_RUN_IDS", _run_ids, frozenset(),
       "fault injection for tests only: run ids whose training process dies after the claim",
       shown_default="none"),
)  # fmt: skip
BY_FIELD: dict[str, Variable] = {v.field: v for v in VARIABLES}
_D: dict[str, Any] = {v.field: v.default for v in VARIABLES}


@dataclass(frozen=True)
class Settings:
    """bplab's settings, one field per entry of VARIABLES (see there for the meanings).

    Computed defaults (None in the table) are resolved at construction, so every field holds
    the value in force. ``broker_url`` None means: no servers, run sweeps in a local pool.
    """

    database_url: str = _D["database_url"]
    broker_url: str | None = _D["broker_url"]
    sql_role: str = _D["sql_role"]
    sql_password: str | None = _D["sql_password"]
    sql_url: str | None = _D["sql_url"]
    sqlite_busy_timeout: float = _D["sqlite_busy_timeout"]
    queue: str = _D["queue"]
    visibility_timeout: float = _D["visibility_timeout"]
    task_time_limit: float | None = _D["task_time_limit"]
    task_soft_time_limit: float | None = _D["task_soft_time_limit"]
    worker_concurrency: int | None = _D["worker_concurrency"]
    population_size: int = _D["population_size"]
    lease_seconds: float = _D["lease_seconds"]
    max_attempts: int = _D["max_attempts"]
    db_retry_seconds: float = _D["db_retry_seconds"]
    requeue_grace_seconds: float = _D["requeue_grace_seconds"]
    reconcile_seconds: float | None = _D["reconcile_seconds"]
    checkpoint_every: int = _D["checkpoint_every"]
    checkpoint_seconds: float = _D["checkpoint_seconds"]
    test_crash_run_ids: frozenset[int] = _D["test_crash_run_ids"]

    def __post_init__(self) -> None:
        # A limit left unset follows the one above it, so that lowering only the visibility
        # timeout (or only the hard limit) still gives a consistent set; explicit values are
        # kept as given and checked together by service.celery_config.time_limits.
        derived = {
            "task_time_limit": lambda: min(DEFAULT_TIME_LIMIT_S, 0.9 * self.visibility_timeout),
            "task_soft_time_limit": lambda: min(
                DEFAULT_SOFT_TIME_LIMIT_S, 0.9 * float(self.task_time_limit or 0)
            ),
            # Four passes per lease: an expired lease is noticed within a quarter of it.
            "reconcile_seconds": lambda: self.lease_seconds / 4,
        }
        for name, compute in derived.items():  # in order: the soft limit needs the hard one
            if getattr(self, name) is None:
                object.__setattr__(self, name, float(compute()))

    @classmethod
    def from_env(cls) -> Settings:
        """Kept for callers of the first API: the same as load_settings()."""
        return load_settings()

    @property
    def distributed(self) -> bool:
        return self.broker_url is not None


def user_config_dir(env: Mapping[str, str] | None = None) -> Path:
    """The user's configuration directory: $XDG_CONFIG_HOME, else ~/.config."""
    env = os.environ if env is None else env
    base = env.get("XDG_CONFIG_HOME") or ""
    return Path(base) if base else Path.home() / ".config"


def config_files(env: Mapping[str, str] | None = None) -> list[Path]:
    """The config files bplab reads, highest precedence first (absent ones are skipped)."""
    return [Path.cwd() / CONFIG_FILE_NAME, user_config_dir(env) / "bplab" / CONFIG_FILE_NAME]


def load_settings(
    overrides: Mapping[str, Any] | None = None,
    *,
    env: Mapping[str, str] | None = None,
    files: Sequence[Path] | None = None,
) -> Settings:
    """Settings from ``overrides`` (field names, e.g. {"database_url": ...}; None values are
    skipped), then ``env`` (default os.environ), then ``files`` (default config_files(), first
    wins), then the defaults. Raises SettingsError, one line, on the first bad value."""
    env = os.environ if env is None else env
    layers = [_read_file(path) for path in (config_files(env) if files is None else files)]
    for key in overrides or {}:
        if key not in BY_FIELD:
            raise SettingsError(f"unknown setting {key!r}")
    values: dict[str, Any] = {}
    for var in VARIABLES:
        raw, source = _lookup(var, overrides or {}, env, layers)
        if raw is None:
            continue
        try:
            values[var.field] = var.parse(var, raw)
        except SettingsError as exc:
            raise SettingsError(f"{exc} ({source})" if source else str(exc)) from None
    return Settings(**values)


def _lookup(
    var: Variable,
    overrides: Mapping[str, Any],
    env: Mapping[str, str],
    layers: Iterable[tuple[Path, Mapping[str, Any]]],
) -> tuple[Any, str]:
    """The raw value of ``var`` and where it came from ("" for the environment); None: default."""
    if overrides.get(var.field) is not None:
        return overrides[var.field], ""
    if var.name in env:
        # Set but empty means the default: the shell's way to unset a value the file gives.
        return (env[var.name] if env[var.name].strip() else None), ""
    for path, table in layers:
        if var.field in table:
            return table[var.field], f"in {path}"
    return None, ""


# A config file's parsed content, keyed by (path, mtime_ns, size): get_settings() may run often.
_file_cache: dict[Path, tuple[tuple[int, int], tuple[Path, dict[str, Any]]]] = {}


def _read_file(path: Path) -> tuple[Path, dict[str, Any]]:
    try:
        stat = path.stat()
    except OSError:
        return path, {}
    stamp = (stat.st_mtime_ns, stat.st_size)
    cached = _file_cache.get(path)
    if cached is not None and cached[0] == stamp:
        return cached[1]
    try:
        table = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise SettingsError(f"{path}: not a readable TOML file: {exc}") from None
    for key in table:
        if key not in BY_FIELD:
            raise SettingsError(
                f"{path}: unknown setting {key!r} (the keys are the BPLAB_* variables in lower"
                " case without BPLAB_, e.g. database_url)"
            )
    _file_cache[path] = (stamp, (path, table))
    return path, table


# The last answer of get_settings and what it was computed from.
_last: tuple[tuple[Any, ...], Settings] | None = None


def get_settings() -> Settings:
    """The settings as the environment and the config files give them now.

    Read afresh on every call (tests and users change the environment at run time), but cheaply
    (a few microseconds): the answer is reused while the BPLAB_* values, the directories and the
    files' stamps are unchanged. Plain strings and os.stat here: pathlib costs ten times more.
    """
    global _last
    environ = os.environ
    config_home = environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    paths = (
        os.path.join(os.getcwd(), CONFIG_FILE_NAME),
        os.path.join(config_home, "bplab", CONFIG_FILE_NAME),
    )
    key = (
        tuple(environ.get(var.name) for var in VARIABLES),
        paths,
        tuple(_stamp(path) for path in paths),
    )
    if _last is not None and _last[0] == key:
        return _last[1]
    settings = load_settings(files=[Path(path) for path in paths])
    _last = (key, settings)
    return settings


def _stamp(path: str) -> tuple[int, int] | None:
    try:
        stat = os.stat(path)
    except OSError:
        return None
    return stat.st_mtime_ns, stat.st_size


def settings_fields() -> list[str]:
    """The Settings fields, in order (tests hold them to the table)."""
    return [f.name for f in fields(Settings)]


def mask_url(url: str | None) -> str:
    """A URL safe to print or log: every credential it can carry replaced by ***.

    That is the password of the userinfo (``user:secret@host``) and the value of every query
    parameter that names a credential (``?password=``, ``sslpassword``, ``token``, ...):
    PostgreSQL (libpq) and Redis both take a password from the query string, so masking only
    the userinfo, as SQLAlchemy's ``hide_password`` does, printed such passwords in clear.
    Works on any scheme (database and broker URLs alike) and leaves the rest as written.
    """
    if not url:
        return ""
    head, sep, fragment = url.partition("#")
    head, qmark, query = head.partition("?")
    scheme, colon_slashes, rest = head.partition("://")
    if colon_slashes:
        authority, slash, path = rest.partition("/")
        creds, at, host = authority.rpartition("@")
        if at:
            user, colon, _password = creds.partition(":")
            authority = f"{user}{':***' if colon else ''}@{host}"
        head = f"{scheme}://{authority}{slash}{path}"
    if qmark:
        query = "&".join(_mask_parameter(item) for item in query.split("&"))
    return f"{head}{qmark}{query}{sep}{fragment}"


# Query parameter names that carry a secret (matched anywhere in the lowercased name).
_SECRET_PARAMETER = re.compile(r"pass|pwd|secret|token|key|auth|credential")


def _mask_parameter(item: str) -> str:
    name, eq, value = item.partition("=")
    if eq and value and _SECRET_PARAMETER.search(unquote_plus(name).lower()):
        return f"{name}=***"
    return item
