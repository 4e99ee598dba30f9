"""The dashboard in a real browser: Debian's headless Chromium driven by Playwright, against
`bplab dashboard` running in a subprocess on a real SQLite database.

Every page is opened and must raise no script error; the results table must have one row per
configuration in the database and the chart must be drawn; a running sweep's page must show
epochs written after it was opened, without a reload.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.web.conftest import EVIL, Populated, Server, start_server, stop_server

# The real browser against SQLite only: the PostgreSQL paths are the API tests' job.
pytestmark = pytest.mark.parametrize("dashboard_db", ["sqlite"], indirect=True)


@pytest.fixture
def server(dashboard_db: Populated, tmp_path: Path) -> Iterator[Server]:
    s = start_server(dashboard_db.url, tmp_path)
    yield s
    stop_server(s)


def _configurations(url: str, sweep_id: int) -> int:
    from sqlalchemy import text

    from service.db.session import session_scope

    with session_scope(url, readonly=True) as s:
        q = text("SELECT count(DISTINCT config_key) FROM runs WHERE sweep_id = :s")
        return int(s.execute(q, {"s": sweep_id}).scalar_one())


def _open_sweep(page: Any, base: str, sweep_id: int) -> None:
    page.goto(f"{base}/sweeps/{sweep_id}")
    page.wait_for_selector("body[data-ready='1']", state="attached", timeout=15_000)


def test_every_page(page: Any, server: Server, dashboard_db: Populated) -> None:
    page.goto(server.base + "/")
    assert page.locator("#sweeps tbody tr").count() == 2
    assert EVIL in page.locator("#sweeps").inner_text()  # shown as text, never run

    for sweep_id in (dashboard_db.grid, dashboard_db.random):
        _open_sweep(page, server.base, sweep_id)
        rows = page.locator("#results tbody tr").count()
        assert rows == _configurations(dashboard_db.url, sweep_id) > 1
        assert int(page.locator("#chart").get_attribute("data-drawn")) > 10
        assert page.locator("#chart canvas").count() >= 1
        page.locator("#results thead th", has_text="final loss").click()  # sortable
        assert page.locator("#results thead th.sorted-asc").inner_text() == "final loss"
        page.select_option("#metric", "accuracy")
        page.select_option("#scale", "linear")
        assert page.locator("#legend label").count() >= 2
    assert page.locator("h1").inner_text().endswith(EVIL)
    # a random sweep: a scatter per parameter and parallel coordinates, one mark per config
    configs = _configurations(dashboard_db.url, dashboard_db.random)
    assert page.locator("#scatter canvas").count() == 2
    assert int(page.locator("#parcoords").get_attribute("data-drawn")) == configs

    page.goto(f"{server.base}/sweeps/{dashboard_db.grid}/compare")
    page.locator("#compare-form button").click()
    page.wait_for_selector("#compare-table")
    assert page.locator("#compare-table tbody tr").count() == 2  # final_loss, solved_epoch

    _open_sweep(page, server.base, dashboard_db.grid)
    page.locator("#results tbody tr details summary").first.click()
    page.locator("#results tbody tr details a").first.click()
    page.wait_for_selector("#weights table.weights")
    assert re.match(r"Run \d+", page.locator("h1").inner_text())
    assert page.locator("#hidden-table tr").count() == 5  # a header and XOR's 4 patterns
    page.wait_for_selector("#chart[data-drawn]", state="attached")
    assert not page.errors, page.errors


def _live_sweep(url: str, tmp: Path) -> tuple[int, dict[int, int]]:
    """A sweep of 2 configurations x 2 seeds whose runs are claimed: 'running', no epochs."""
    from service.db import repository as repo
    from service.db.session import session_scope
    from service.spec import loader
    from service.sweeps import create_sweep_from_spec

    spec = tmp / "live.yaml"
    spec.write_text(
        "name: live\ndataset: xor\nseeds: 2\nparameters:\n"
        "  learning_rate: [0.5, 1.0]\n  hidden: 2\n  epochs: 500\n  log_every: 1\n"
    )
    with session_scope(url) as s:
        sweep_id = create_sweep_from_spec(s, loader.load_spec(spec), backend="local")
    with session_scope(url) as s:
        attempts = repo.claim_runs(s, repo.run_ids(s, sweep_id), "browser-test")
    return sweep_id, attempts


def _write_epochs(url: str, attempts: dict[int, int], first: int, last: int) -> None:
    from service.db import repository as repo
    from service.db.session import session_scope

    with session_scope(url) as s:
        for run_id, attempt in attempts.items():
            rows = [
                {"epoch": e, "loss": 0.5 / (1 + e / 50), "accuracy": 0.5}
                for e in range(first, last + 1)
            ]
            repo.record_epochs(s, run_id, attempt, rows)


def test_running_sweep_updates_without_reload(
    page: Any, server: Server, dashboard_db: Populated, tmp_path: Path
) -> None:
    from service.db import repository as repo
    from service.db.session import session_scope

    sweep_id, attempts = _live_sweep(dashboard_db.url, tmp_path)
    _write_epochs(dashboard_db.url, attempts, 1, 40)
    curve_calls: list[str] = []
    page.on("request", lambda r: curve_calls.append(r.url) if "/curves" in r.url else None)
    _open_sweep(page, server.base, sweep_id)
    assert page.locator("#chart-max-epoch").inner_text() == "40"
    assert page.locator("#live-badge").is_visible()
    page.evaluate("() => { window.__sameDocument = 'yes'; }")

    _write_epochs(dashboard_db.url, attempts, 41, 90)
    page.wait_for_selector("#chart-max-epoch:text-is('90')", timeout=10_000)
    assert page.evaluate("() => window.__sameDocument") == "yes"  # no reload happened
    assert any("after=40" in u for u in curve_calls)  # the poll asked only for new epochs

    # A running run's page follows it the same way.
    run_id = min(attempts)
    page.goto(f"{server.base}/runs/{run_id}")
    page.wait_for_selector("#chart-max-epoch:text-is('90')", timeout=10_000)
    page.evaluate("() => { window.__sameDocument = 'run'; }")
    _write_epochs(dashboard_db.url, attempts, 91, 120)
    page.wait_for_selector("#chart-max-epoch:text-is('120')", timeout=10_000)
    assert page.evaluate("() => window.__sameDocument") == "run"

    _open_sweep(page, server.base, sweep_id)
    page.evaluate("() => { window.__sameDocument = 'yes'; }")
    with session_scope(dashboard_db.url) as s:
        for run_id, attempt in attempts.items():
            repo.finish_run(s, run_id, attempt, status="succeeded", epochs_run=120, final_loss=0.15)
    page.wait_for_selector("#live-badge", state="hidden", timeout=10_000)
    assert "succeeded 4" in page.locator("#counts").inner_text()
    assert page.evaluate("() => window.__sameDocument") == "yes"
    assert not page.errors, page.errors
