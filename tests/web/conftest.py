"""Real databases with real sweeps for the dashboard's tests, and a real dashboard server.

``dashboard_db`` trains two small XOR sweeps through `bplab sweep run` once per module and
database (SQLite, and PostgreSQL marked ``postgres``): a grid, and a random sweep whose name
is an HTML script tag. ``server`` runs `bplab dashboard` in a subprocess on 127.0.0.1 and
stops it by its pid.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.cli.conftest import Bplab
from tests.conftest import create_pg_database, drop_pg_database

EVIL = "<script>alert(1)</script>"
GRID = {
    "name": "grid",
    "dataset": "xor",
    "seeds": 3,
    "parameters": {
        "learning_rate": [0.5, 2.0],
        "hidden": [2, 3],
        "momentum": 0.9,
        "epochs": 300,
        "stop_within": 0.5,
        "stop_on_solve": True,
        "log_every": 7,
    },
}
RANDOM = {
    "name": f"random {EVIL}",
    "dataset": "xor",
    "method": "random",
    "samples": 4,
    "seeds": 2,
    "parameters": {
        "learning_rate": {"distribution": "log_uniform", "min": 0.1, "max": 4.0},
        "hidden": [2, 3],
        "momentum": 0.9,
        "epochs": 200,
        "stop_within": 0.5,
        "log_every": 5,
    },
}


@dataclass
class Populated:
    url: str
    bplab: Bplab
    grid: int
    random: int


def _run(bplab: Bplab, spec: dict, name: str) -> int:
    before = {s["id"] for s in bplab.json("sweep", "list")}
    bplab("sweep", "run", str(bplab.write_spec(name, spec)), "--workers", "2")
    (new,) = {s["id"] for s in bplab.json("sweep", "list")} - before
    return new


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]
)
def dashboard_db(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Populated]:
    from service.db import migrate
    from service.db.session import dispose_engines, make_engine

    tmp: Path = tmp_path_factory.mktemp("web")
    if request.param == "sqlite":
        url = f"sqlite:///{tmp / 'bplab.db'}"
    else:
        url = create_pg_database("bplab_test_web")
        engine = make_engine(url)
        migrate.upgrade_engine(engine)
        engine.dispose()
    old = os.environ.get("BPLAB_DATABASE_URL")
    os.environ["BPLAB_DATABASE_URL"] = url
    try:
        bplab = Bplab(url, tmp)
        yield Populated(url, bplab, _run(bplab, GRID, "grid.yaml"), _run(bplab, RANDOM, "r.yaml"))
    finally:
        if old is None:
            os.environ.pop("BPLAB_DATABASE_URL", None)
        else:
            os.environ["BPLAB_DATABASE_URL"] = old
        dispose_engines(url)
        if request.param == "postgresql":
            drop_pg_database(url)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    base: str
    process: subprocess.Popen


def start_server(url: str, cwd: Path) -> Server:
    """`bplab dashboard` on a free port of 127.0.0.1, once it answers."""
    port = free_port()
    env = {**os.environ, "BPLAB_DATABASE_URL": url}
    process = subprocess.Popen(
        [sys.executable, "-m", "service.cli", "dashboard", "--port", str(port)],
        env=env,
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"{base}/api/sweeps", timeout=2).read()
            return Server(base, process)
        except OSError:
            if process.poll() is not None:
                out = process.stdout.read().decode() if process.stdout else ""
                raise RuntimeError(f"bplab dashboard exited: {out}") from None
            time.sleep(0.1)
    stop_server(Server(base, process))
    raise RuntimeError("bplab dashboard did not answer within 30 s")


def stop_server(server: Server) -> None:
    server.process.terminate()  # by the pid this test started, never by name
    try:
        server.process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        server.process.kill()
        server.process.wait()


# The real browser (tests/web/test_browser*.py): Debian's headless Chromium, by Playwright.
CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install -y chromium (.ci/run does)")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    p = browser.new_page(viewport={"width": 1200, "height": 900})
    p.errors = []  # type: ignore[attr-defined]
    p.on("pageerror", lambda e: p.errors.append(str(e)))
    p.on("console", lambda m: p.errors.append(m.text) if m.type == "error" else None)
    p.on("dialog", lambda d: (p.errors.append(f"dialog: {d.message}"), d.dismiss()))
    yield p
    p.close()
