"""`bplab worker`: start a Celery worker for bplab's tasks (a thin wrapper over `celery worker`).

The command replaces itself (exec) with ``python -m celery -A worker.app worker``: the worker keeps
this process's id (so a supervisor or test can signal it), and the BLAS thread variables are in the
environment before numpy is first imported. It imports nothing from ``worker`` (service never does).
"""

from __future__ import annotations

import os
import sys

import click

from service.celery_config import BLAS_THREAD_VARIABLES, CeleryConfigError, time_limits
from service.config import Settings, mask_url
from service.errors import BadInput

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


@click.command("worker")
@click.option(
    "--concurrency",
    "-c",
    type=click.IntRange(min=1),
    default=None,
    envvar="BPLAB_WORKER_CONCURRENCY",
    help="Worker processes (env BPLAB_WORKER_CONCURRENCY; default: the number of cores).",
)
@click.option(
    "--queues",
    "-Q",
    default=None,
    help="Comma-separated queues to consume (default: BPLAB_QUEUE, else 'bplab').",
)
@click.option(
    "--loglevel",
    "-l",
    type=click.Choice(LOG_LEVELS, case_sensitive=False),
    default="INFO",
    show_default=True,
)
@click.option(
    "--hostname",
    "-n",
    default=None,
    help="Celery node name (default: bplab-<pid>@<host>, unique per worker on a machine).",
)
@click.pass_obj
def worker(
    settings: Settings,
    concurrency: int | None,
    queues: str | None,
    loglevel: str,
    hostname: str | None,
) -> None:
    """Train the runs that `bplab sweep submit` publishes (needs BPLAB_BROKER_URL)."""
    if not settings.broker_url:
        raise click.ClickException(
            "BPLAB_BROKER_URL is not set: a worker takes its runs from a broker, "
            "e.g. BPLAB_BROKER_URL=redis://localhost:6379/0"
        )
    try:
        time_limits()
    except CeleryConfigError as exc:  # settings that contradict each other: bad input
        raise BadInput(str(exc)) from None
    _check_database(settings.database_url)

    argv = [sys.executable, "-m", "celery", "-A", "worker.app", "worker", "--pool", "prefork"]
    argv += ["--loglevel", loglevel.upper()]
    # Every worker on a host needs its own node name; the pid survives the exec below.
    argv += ["--hostname", hostname or f"bplab-{os.getpid()}@%h"]
    # The database, not worker-to-worker chatter, is bplab's shared state: skip the start-up
    # synchronisation and the gossip between workers.
    argv += ["--without-mingle", "--without-gossip"]
    concurrency = concurrency or settings.worker_concurrency  # else a bplab.toml may give it
    if concurrency is not None:
        argv += ["--concurrency", str(concurrency)]
    if queues:
        argv += ["--queues", queues]

    env = dict(os.environ)
    # The tasks read the settings afresh: `bplab --db URL worker` must reach them as well.
    env["BPLAB_DATABASE_URL"] = settings.database_url
    for name in BLAS_THREAD_VARIABLES:
        env[name] = "1"
    click.echo(
        f"bplab worker: broker {mask_url(settings.broker_url)}, "
        f"database {mask_url(settings.database_url)}",
        err=True,
    )
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, argv, env)


def _check_database(url: str) -> None:
    # Fail at start-up, not on every task, when the database is unreachable or not migrated;
    # the CLI's group reports the failure as one line, exit 2 (service.commands.failures).
    from service.db.session import get_engine

    with get_engine(url).connect():
        pass
