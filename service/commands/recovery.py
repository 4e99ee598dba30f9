"""`bplab sweep cancel | retry | recover`: stop a sweep, run its failures again, repair it.

Standalone click commands, attached to the ``sweep`` group by service.commands (like remote.py).
"""

from __future__ import annotations

import click

from service.config import Settings, mask_url
from service.db import leases
from service.db.session import session_scope
from service.errors import NotFound
from service.output import format_option, render


def _sweep_backend(settings: Settings, sweep_id: int) -> str:
    from service.db import repository as repo

    with session_scope(settings.database_url, readonly=True) as session:
        row = repo.get_sweep(session, sweep_id)
        if row is None:
            raise NotFound(f"sweep {sweep_id} does not exist (see `bplab sweep list`)")
        return row.backend


@click.command("cancel")
@click.argument("sweep_id", type=int)
@click.pass_obj
def cancel(settings: Settings, sweep_id: int) -> None:
    """Cancel SWEEP_ID's unfinished runs.

    Queued runs are cancelled at once and never start; running runs stop at their next
    heartbeat (about a second, or one epoch if epochs are slower) and end 'cancelled' with the
    curve they had. Finished runs are kept. `bplab sweep retry ID --cancelled` runs them again.
    """
    _sweep_backend(settings, sweep_id)
    with session_scope(settings.database_url) as session:
        counts = leases.cancel_runs(session, sweep_id)
    click.echo(
        f"sweep {sweep_id}: cancelled {counts['queued']} queued and {counts['running']} running "
        "run(s)",
        err=True,
    )


@click.command("retry")
@click.argument("sweep_id", type=int)
@click.option("--failed", "statuses", flag_value="failed", multiple=True, help="Failed runs.")
@click.option("--diverged", "statuses", flag_value="diverged", multiple=True, help="Diverged runs.")
@click.option(
    "--cancelled", "statuses", flag_value="cancelled", multiple=True, help="Cancelled runs."
)
@click.option(
    "--pruned",
    "statuses",
    flag_value="pruned",
    multiple=True,
    help="Runs early_terminate stopped: trained to the end this time (never by default).",
)
@click.option(
    "--workers",
    "-w",
    type=click.IntRange(min=1),
    default=None,
    help="Local sweeps: worker processes (default: all cores).",
)
@format_option
@click.pass_obj
def retry(
    settings: Settings, sweep_id: int, statuses: tuple[str, ...], workers: int | None, fmt: str
) -> None:
    """Train SWEEP_ID's failed, diverged and/or cancelled runs again (default: all three).

    A retried run starts afresh from epoch 0 with the same seed: its old epoch rows, weights and
    checkpoint are deleted first, and it gets BPLAB_MAX_ATTEMPTS attempts again. A local sweep's
    runs are trained here and now; a Celery sweep's are published to the workers.
    """
    from service.commands.manage import refuse_changed_data

    backend = _sweep_backend(settings, sweep_id)
    refuse_changed_data(settings, sweep_id, "retry")  # its data file changed: issue 19
    chosen = sorted(set(statuses)) or list(leases.RETRYABLE)
    if backend == "celery" and not settings.broker_url:
        raise click.ClickException(
            f"sweep {sweep_id} runs on Celery workers: set BPLAB_BROKER_URL to retry it"
        )
    with session_scope(settings.database_url) as session:
        run_ids = leases.retry_runs(session, sweep_id, chosen)
    click.echo(
        f"sweep {sweep_id}: {len(run_ids)} {'/'.join(chosen)} run(s) re-queued from epoch 0",
        err=True,
    )
    if not run_ids:
        return
    if backend == "celery":
        from service.dispatch import DispatchError, publish_stored

        assert settings.broker_url is not None
        try:
            publish_stored(settings.database_url, run_ids, settings.broker_url, sweep_id=sweep_id)
        except DispatchError as exc:
            raise click.ClickException(str(exc)) from None
        click.echo(f"published on {mask_url(settings.broker_url)}", err=True)
        return
    from service.commands.common import print_results
    from service.local import LocalPool, default_workers
    from service.progress import sweep_progress

    # the pool first: its processes can be forked only while no progress thread runs
    processes = min(workers or default_workers(), len(run_ids))
    with (
        LocalPool(processes, settings.database_url) as pool,
        sweep_progress(len(run_ids)) as bar,
    ):
        pool.run(run_ids, on_done=lambda _rid, status: bar.advance(status))
    print_results(settings, sweep_id, fmt)


@click.command("recover")
@click.argument("sweep_id", type=int, required=False)
@click.option(
    "--grace",
    type=click.FloatRange(min=0),
    default=0.0,
    show_default=True,
    help="Re-publish a queued run missing from the broker only if queued this many seconds.",
)
@format_option
@click.pass_obj
def recover(settings: Settings, sweep_id: int | None, grace: float, fmt: str) -> None:
    """Run the reconciler once, over SWEEP_ID or every sweep.

    Runs whose lease expired (BPLAB_LEASE_SECONDS without a heartbeat: their worker died) go
    back to the queue, or fail after BPLAB_MAX_ATTEMPTS attempts. With BPLAB_BROKER_URL set, a
    Celery sweep's queued runs that have no message in the broker are published again.
    Workers do this by themselves periodically. A local sweep's re-queued runs are trained by
    `bplab sweep resume ID`.
    """
    from service.reconcile import reconcile

    if sweep_id is not None:
        _sweep_backend(settings, sweep_id)
    report = reconcile(
        settings.database_url, sweep_id=sweep_id, broker_url=settings.broker_url, grace_s=grace
    )
    click.echo(report.summary(), err=True)
    render(
        [
            {
                "requeued": len(report.requeued),
                "failed": len(report.failed),
                "republished": len(report.republished),
                "requeued_ids": " ".join(map(str, report.requeued)),
                "failed_ids": " ".join(map(str, report.failed)),
            }
        ],
        fmt,
    )


RECOVERY_COMMANDS = (cancel, retry, recover)
