"""`bplab sweep submit | watch | status | republish`: sweeps trained by Celery workers.

Standalone click commands, attached to the ``sweep`` group by service.commands. The sweep's
helpers are imported inside the commands so that this module and service.commands.sweep can
import each other in either order.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import click

from service.config import Settings, mask_url
from service.db import repository as repo
from service.db.session import session_scope
from service.errors import BadInput, NotFound
from service.output import format_option, render
from service.spec import DEFAULT_MAX_RUNS, SweepSpec

# Statuses a run does not leave by itself (retry and recover may re-queue it later).
TERMINAL = ("succeeded", "diverged", "failed", "cancelled", "pruned")
BROKER_CHECK_TIMEOUT_S = 5.0
# `sweep submit` refuses a sweep one of whose runs needs more memory than this: generous,
# since the workers' machines are not this one (`sweep run` checks against this machine's).
SUBMIT_MEMORY_BOUND = 64 * 10**9
# `sweep watch` asks the workers which queues they consume this often while runs wait.
CONSUMER_CHECK_S = 15.0


@click.command("submit")
@click.argument("spec_path", metavar="SPEC")
@click.option(
    "--max-runs",
    type=click.IntRange(min=1, max=100_000),  # service.commands.sweep.MAX_RUNS_LIMIT
    default=DEFAULT_MAX_RUNS,
    show_default=True,
    help="Refuse specs that expand to more runs than this.",
)
@click.pass_obj
def submit(settings: Settings, spec_path: str, max_runs: int) -> None:
    """Record SPEC's runs and queue them for Celery workers; prints the sweep id.

    Nothing is written when the spec is invalid or the broker cannot be reached. Tasks are
    published only after the sweep is committed, so a worker never sees a run that does not exist.
    """
    submit_spec(settings, spec_path, max_runs, print_id=True)


def submit_spec(settings: Settings, spec_path: str, max_runs: int, *, print_id: bool) -> int:
    """What `sweep submit` does (and `sweep run` with a broker configured); the sweep id."""
    from service.commands.common import load_spec_or_exit
    from service.db.session import get_engine
    from service.dispatch import DispatchError
    from service.dispatch import submit_spec as dispatch_spec
    from service.producer import BrokerUnavailable, check_broker

    broker_url = _require_broker(settings)
    spec = load_spec_or_exit(spec_path, max_runs)
    estimate_line = _submit_estimate(spec)
    _refuse_sqlite(settings)
    _check_broker_url(broker_url)
    # Both ends checked before anything is written, so that a wrong URL, a server that does
    # not answer or an un-migrated database is bad input (one line, exit 2; the CLI's group
    # reports the database's), not a half-done submit.
    get_engine(settings.database_url)
    try:
        check_broker(broker_url, timeout=BROKER_CHECK_TIMEOUT_S)
    except BrokerUnavailable as exc:
        raise BadInput(f"{exc}; nothing was written") from None
    if estimate_line:  # only once nothing stands in the way: a refusal stays one line
        click.echo(estimate_line, err=True)
    try:
        done = dispatch_spec(spec, settings.database_url, broker_url)
    except DispatchError as exc:
        raise click.ClickException(str(exc)) from None
    if print_id:
        click.echo(done.sweep_id)
    click.echo(
        f"sweep {done.sweep_id}: {spec.name}: {done.runs} run(s) queued in {done.tasks} task(s) "
        f"on {mask_url(broker_url)} "
        f"(written in {done.write_s:.2f} s, published in {done.publish_s:.2f} s); "
        f"follow it with `bplab sweep watch {done.sweep_id}`",
        err=True,
    )
    return done.sweep_id


def _submit_estimate(spec: SweepSpec) -> str | None:
    """The sweep's cost as a line to print; refuse only a run no worker could hold.

    The workers are other machines, so this one's memory says nothing about them: a run is
    refused only above SUBMIT_MEMORY_BOUND, more than any machine a worker is likely to run on.
    """
    from service.spec.estimate import describe, estimate

    cost = estimate(spec)
    if cost is None:
        return None
    if cost.largest_run_bytes > SUBMIT_MEMORY_BOUND:
        raise BadInput(
            f"{spec.name}: its largest run needs about {cost.largest_run_bytes / 1e9:.3g} GB, "
            f"more than any worker is likely to have (the bound is "
            f"{SUBMIT_MEMORY_BOUND / 1e9:.0f} GB); use fewer or smaller hidden layers, fewer "
            "epochs or a smaller batch_size; nothing was written"
        )
    return describe(cost, 1).replace("on 1 worker(s)", "on one worker")


@click.command("republish")
@click.argument("sweep_id", type=int)
@click.pass_obj
def republish(settings: Settings, sweep_id: int) -> None:
    """Publish a task again for every queued run of SWEEP_ID (after a failed or lost publish).

    Safe to repeat: a run published twice is trained once.
    """
    from service.dispatch import DispatchError, republish_sweep

    broker_url = _require_broker(settings)
    _require_sweep(settings, sweep_id)
    try:
        sent = republish_sweep(settings.database_url, sweep_id, broker_url)
    except DispatchError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"sweep {sweep_id}: {sent} queued run(s) published again", err=True)


@click.command("status")
@click.argument("sweep_id", type=int)
@format_option
@click.pass_obj
def status(settings: Settings, sweep_id: int, fmt: str) -> None:
    """A sweep's run counts by status, once."""
    _require_sweep(settings, sweep_id)
    counts = _counts(settings, sweep_id)
    total = sum(counts.values())
    done = sum(counts[s] for s in TERMINAL)
    render([{"sweep": sweep_id, "total": total, "done": done, **counts}], fmt)


@click.command("watch")
@click.argument("sweep_id", type=int)
@click.option(
    "--interval",
    type=click.FloatRange(min=0.05),
    default=1.0,
    show_default=True,
    help="Seconds between two looks at the database.",
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=0),
    default=None,
    help="Give up (exit code 1) after this many seconds; the sweep goes on.",
)
@format_option
@click.pass_obj
def watch(
    settings: Settings, sweep_id: int, interval: float, timeout: float | None, fmt: str
) -> None:
    """Follow a sweep until every run has finished, then print its results."""
    from service.commands.common import print_results
    from service.commands.outcome import finish
    from service.progress import epoch_poll, sweep_progress

    _require_sweep(settings, sweep_id)
    counts = _counts(settings, sweep_id)
    total = sum(counts.values())
    start = time.monotonic()
    done_at_start = sum(counts[s] for s in TERMINAL)
    idle = _IdleQueueNote(settings.broker_url)
    try:
        with sweep_progress(total, poll=epoch_poll(settings.database_url, sweep_id)) as bar:
            while True:
                idle.check(counts, bar.note)
                done = sum(counts[s] for s in TERMINAL)
                elapsed = time.monotonic() - start
                rate = (done - done_at_start) / elapsed if elapsed > 0 else 0.0
                bar.set(
                    done=done,
                    failed=counts["failed"] + counts["cancelled"],
                    description=f"runs ({counts['running']} running, {rate:.2f} runs/s)",
                )
                if done >= total:
                    break
                if timeout is not None and elapsed >= timeout:
                    raise click.ClickException(
                        f"sweep {sweep_id} not finished after {timeout:g} s "
                        f"({done}/{total} runs done); it goes on on the workers"
                    )
                time.sleep(interval)
                counts = _counts(settings, sweep_id)
    except KeyboardInterrupt:
        click.echo(f"stopped watching; sweep {sweep_id} goes on on the workers", err=True)
        raise SystemExit(130) from None
    print_results(settings, sweep_id, fmt)
    finish(settings, sweep_id)  # failed runs: one line per configuration, exit 1


class _IdleQueueNote:
    """Says once, under the bar, when runs wait and no worker consumes bplab's queue.

    Asked only while runs are queued and none runs (a working sweep needs no question), at
    most every CONSUMER_CHECK_S; the answer comes from the workers themselves (Celery's
    control broadcast), so a worker on another queue or another broker counts as none.
    """

    def __init__(self, broker_url: str | None) -> None:
        self.broker_url = broker_url
        self.last: float | None = None
        self.said = False

    def check(self, counts: dict[str, int], say: Callable[[str], None]) -> None:
        if self.broker_url is None or self.said or counts["running"] or not counts["queued"]:
            return
        now = time.monotonic()
        if self.last is not None and now - self.last < CONSUMER_CHECK_S:
            return
        self.last = now
        if consumers(self.broker_url) == 0:
            from service.celery_config import queue_name

            self.said = True
            say(
                f"no worker consumes queue {queue_name()!r} on {mask_url(self.broker_url)}: "
                "the runs wait until one starts (`bplab worker`)"
            )


def _counts(settings: Settings, sweep_id: int) -> dict[str, int]:
    with session_scope(settings.database_url, readonly=True) as session:
        return repo.status_counts(session, sweep_id)


def _require_broker(settings: Settings) -> str:
    if not settings.broker_url:
        raise click.ClickException(
            "BPLAB_BROKER_URL is not set: submitted sweeps go to Celery workers through a broker "
            "(e.g. redis://localhost:6379/0); `bplab sweep run` trains locally instead"
        )
    return settings.broker_url


def _refuse_sqlite(settings: Settings) -> None:
    """Workers on other machines cannot open this machine's SQLite file: refuse up front."""
    from sqlalchemy.engine import make_url

    try:
        backend = make_url(settings.database_url).get_backend_name()
    except Exception:  # noqa: BLE001 - a bad URL is reported by the first database use
        return
    if backend == "sqlite":
        raise BadInput(
            f"BPLAB_DATABASE_URL is SQLite ({mask_url(settings.database_url)}): Celery workers "
            "on other machines cannot reach that file; set it to a PostgreSQL URL the workers "
            "share, or unset BPLAB_BROKER_URL and train here with `bplab sweep run`"
        )


def _check_broker_url(broker_url: str) -> None:
    """A broker URL that cannot be a broker (no scheme, an unknown one, a bad port): one line."""
    from kombu import Connection

    shown = mask_url(broker_url)
    if "://" not in broker_url:
        # not echoed: a value with no scheme cannot be masked, and may be a pasted password
        raise BadInput(
            "BPLAB_BROKER_URL is not a URL (no scheme://); e.g. redis://localhost:6379/0"
        )
    try:
        conn = Connection(broker_url)
        conn.transport  # noqa: B018 - resolving the transport is the check
        conn.release()
    except KeyError:
        scheme = broker_url.partition("://")[0]
        raise BadInput(
            f"BPLAB_BROKER_URL {shown}: unknown broker scheme {scheme!r}; bplab's workers use "
            "Redis (redis://HOST:PORT/DB)"
        ) from None
    except (ValueError, ImportError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise BadInput(f"BPLAB_BROKER_URL {shown}: {first}") from None


def consumers(broker_url: str, timeout: float = 1.0) -> int | None:
    """How many workers consume bplab's queue on broker_url; None when that cannot be told."""
    from service.celery_config import queue_name
    from service.producer import producer_app

    try:
        replies = producer_app(broker_url).control.inspect(timeout=timeout).active_queues() or {}
    except Exception:  # noqa: BLE001 - an unanswerable question, not a failure of the watch
        return None
    queue = queue_name()
    return sum(1 for queues in replies.values() if any(q.get("name") == queue for q in queues))


def _require_sweep(settings: Settings, sweep_id: int) -> None:
    with session_scope(settings.database_url, readonly=True) as session:
        if repo.get_sweep(session, sweep_id) is None:
            raise NotFound(f"sweep {sweep_id} does not exist (see `bplab sweep list`)")


REMOTE_COMMANDS = (submit, watch, status, republish)
