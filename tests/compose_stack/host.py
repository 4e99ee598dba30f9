"""This host's side of the compose run: its bplab CLI and its reads, through 127.0.0.1's ports."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from sqlalchemy import text

from service.db.session import session_scope
from tests.distributed.bplab_cli import BPLAB


def database_url(env: dict[str, str]) -> str:
    return (
        f"postgresql+psycopg://bplab:{env['POSTGRES_PASSWORD']}"
        f"@127.0.0.1:{env['BPLAB_POSTGRES_PORT']}/bplab"
    )


def host_env(env: dict[str, str]) -> dict[str, str]:
    """This host's bplab CLI pointed at the stack, as the README's distributed section says."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("BPLAB_")}
    return {
        **clean,
        "BPLAB_DATABASE_URL": database_url(env),
        "BPLAB_BROKER_URL": f"redis://:{env['REDIS_PASSWORD']}@127.0.0.1:{env['BPLAB_REDIS_PORT']}/0",
        "BPLAB_SQL_PASSWORD": env["BPLAB_SQL_PASSWORD"],
    }


def bplab(
    env: dict[str, str], *args: str, cwd: Path, ok: bool = True
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [*BPLAB, *args], env=host_env(env), cwd=cwd, capture_output=True, text=True, timeout=300
    )
    if ok:
        assert result.returncode == 0, f"bplab {' '.join(args)}: {result.stdout}{result.stderr}"
    return result


def query(url: str, sql: str, **params: object) -> list[tuple]:
    with session_scope(url, readonly=True) as session:
        return [tuple(r) for r in session.execute(text(sql), params)]
