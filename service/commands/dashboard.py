"""`bplab dashboard`: the read-only web dashboard over the database the CLI uses."""

from __future__ import annotations

import ipaddress

import click

from service.config import Settings, mask_url


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and "localhost": addresses no other machine can reach."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@click.command("dashboard")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8765, show_default=True, type=click.IntRange(0, 65535))
@click.pass_obj
def dashboard(settings: Settings, host: str, port: int) -> None:
    """Serve the web dashboard: sweeps, results, live curves, comparisons, runs.

    It reads the database BPLAB_DATABASE_URL names (SQLite or PostgreSQL) through read-only
    connections and never writes. It has no login: keep it on 127.0.0.1 (the default), or
    reach it through an SSH tunnel.
    """
    import uvicorn

    from service.db.session import session_scope
    from service.web.app import create_app

    # Fail here, with the CLI's one-line message, rather than on the first page view.
    with session_scope(settings.database_url, readonly=True):
        pass
    if not is_loopback(host):
        click.secho(
            f"warning: listening on {host}, reachable from other machines; the dashboard has"
            " no login and shows every sweep in the database",
            err=True,
            fg="yellow",
        )
    where = mask_url(settings.database_url)
    click.echo(f"bplab dashboard on http://{host}:{port}/ (database {where}, read-only)")
    uvicorn.run(create_app(settings.database_url), host=host, port=port, log_level="warning")
