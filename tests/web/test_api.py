"""The dashboard's JSON and pages through Starlette's test client, on real sweeps.

The numbers must be the CLI's: each API answer is checked against `bplab results`,
`bplab compare`, `bplab inspect --hidden` and service.curves on the same database.
"""

from __future__ import annotations

import hashlib
import html
import json
import math
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import text
from starlette.testclient import TestClient

from service.db.session import session_scope
from service.web.app import create_app
from tests.web.conftest import EVIL, Populated


@pytest.fixture(scope="module")
def client(dashboard_db: Populated) -> TestClient:
    return TestClient(create_app(dashboard_db.url), raise_server_exceptions=False)


def _same(a: Any, b: Any) -> bool:
    """Equal, reading the API's "nan"/"inf" strings as the floats the CLI prints."""
    if isinstance(a, str) and a in ("nan", "inf", "-inf"):
        a = float(a)
    if isinstance(b, str) and b in ("nan", "inf", "-inf"):
        b = float(b)
    if isinstance(a, float) and isinstance(b, float):
        return (math.isnan(a) and math.isnan(b)) or math.isclose(a, b, rel_tol=1e-12)
    return a == b


def test_sweep_list_counts_every_run(client: TestClient, dashboard_db: Populated) -> None:
    sweeps = {s["id"]: s for s in client.get("/api/sweeps").json()["sweeps"]}
    assert set(sweeps) == {dashboard_db.grid, dashboard_db.random}
    grid = sweeps[dashboard_db.grid]
    assert grid["runs"] == 12 and sum(grid["counts"].values()) == 12
    assert grid["done"] == 12 and grid["duration_s"] is not None


@pytest.mark.parametrize("which", ["grid", "random"])
def test_results_table_is_bplab_results(
    client: TestClient, dashboard_db: Populated, which: str
) -> None:
    sweep_id = getattr(dashboard_db, which)
    cli_rows = dashboard_db.bplab.json("results", str(sweep_id))
    state = client.get(f"/api/sweeps/{sweep_id}").json()
    assert len(state["rows"]) == len(cli_rows)
    for api_row, cli_row in zip(state["rows"], cli_rows, strict=True):
        for key, value in cli_row.items():
            assert _same(api_row[key], value), (key, api_row[key], value)


def test_status_filter(client: TestClient, dashboard_db: Populated) -> None:
    rows = client.get(f"/api/sweeps/{dashboard_db.grid}?status=succeeded").json()["rows"]
    assert sum(r["seeds"] for r in rows) == sum(r["succeeded"] for r in rows)


def test_curves_are_the_mean_over_seeds(client: TestClient, dashboard_db: Populated) -> None:
    from service.compare import matches, parse_filters
    from service.curves import Curve, aggregate, load_curves
    from service.db import repository as repo
    from service.db.session import session_scope
    from service.records import run_record

    sweep_id = dashboard_db.grid
    state = client.get(f"/api/sweeps/{sweep_id}").json()
    groups = [r["group"] for r in state["rows"]]
    # points >= epochs / log_every: no decimation, so every recorded epoch is compared
    data = client.get(f"/api/sweeps/{sweep_id}/curves?groups={','.join(groups)}&points=4000").json()
    with session_scope(dashboard_db.url, readonly=True) as session:
        runs = [run_record(r) for r in repo.list_runs(session, sweep_id)]
        curves = load_curves(session, sweep_id=sweep_id, metrics=("loss",))
    assert [g["id"] for g in data["groups"]] == groups and len(groups) == 4
    for row, group in zip(state["rows"], data["groups"], strict=True):
        members = [r for r in runs if matches(r["config"], parse_filters(row["filter"]))]
        band = aggregate(
            [Curve(curves[r["id"]]["epoch"], curves[r["id"]]["loss"]) for r in members]
        )
        assert band is not None and group["n_runs"] == len(members) == 3
        assert group["epochs"] == band.epochs.tolist()
        assert group["mean"] == pytest.approx(band.mean.tolist())
        assert group["high"] == pytest.approx(band.high.tolist())


def test_curves_after_sends_only_new_epochs(client: TestClient, dashboard_db: Populated) -> None:
    base = f"/api/sweeps/{dashboard_db.grid}/curves"
    whole = client.get(base).json()
    later = client.get(f"{base}?after=100&groups={','.join(g['id'] for g in whole['groups'])}")
    for old, new in zip(whole["groups"], later.json()["groups"], strict=True):
        assert all(e > 100 for e in new["epochs"])
        assert new["epochs"] == [e for e in old["epochs"] if e > 100]


def test_curves_are_decimated_to_the_width(client: TestClient, dashboard_db: Populated) -> None:
    data = client.get(f"/api/sweeps/{dashboard_db.grid}/curves?points=10").json()
    assert data["width"] == 35  # a multiple of log_every (7) covering 300 epochs in ~10
    for group in data["groups"]:
        assert len(group["epochs"]) <= 10 + 4  # bucket ends, plus where seeds stopped


def test_compare_is_bplab_compare(client: TestClient, dashboard_db: Populated) -> None:
    a, b = "learning_rate=0.5,hidden=3", "learning_rate=2.0,hidden=3"
    cli = dashboard_db.bplab.json("compare", str(dashboard_db.grid), "--a", a, "--b", b)[0]
    api = client.get(f"/api/sweeps/{dashboard_db.grid}/compare", params={"a": a, "b": b})
    assert api.status_code == 200
    for api_metric, cli_metric in zip(api.json()["metrics"], cli["metrics"], strict=True):
        for key, value in cli_metric.items():
            assert _same(api_metric[key], value), key
    assert api.json()["summary"] == cli["summary"]
    page = client.get(f"/sweeps/{dashboard_db.grid}/compare", params={"a": a, "b": b})
    assert page.status_code == 200 and "compare-table" in page.text


def test_run_is_bplab_inspect(client: TestClient, dashboard_db: Populated) -> None:
    from service.cli import cli

    run_id = client.get(
        f"/api/sweeps/{dashboard_db.grid}/runs?group="
        + client.get(f"/api/sweeps/{dashboard_db.grid}").json()["rows"][0]["group"]
    ).json()["runs"][0]["id"]
    result = CliRunner().invoke(
        cli,
        ["inspect", str(run_id), "--hidden", "--format", "json"],
        env={"BPLAB_DATABASE_URL": dashboard_db.url},
    )
    inspected = json.loads(result.stdout)
    network = client.get(f"/api/runs/{run_id}").json()["network"]
    assert [lw["weights"] for lw in network["layers"]] == [
        lw["weights"] for lw in inspected["layers"]
    ]
    assert network["patterns"] == inspected["patterns"]
    curve = client.get(f"/api/runs/{run_id}/curve").json()
    assert curve["epochs"] == sorted(curve["epochs"]) and curve["values"]
    assert client.get(f"/runs/{run_id}").status_code == 200


@pytest.mark.parametrize(
    ("path", "status", "words"),
    [
        ("/sweeps/999", 404, "sweep 999 does not exist"),
        ("/api/sweeps/999", 404, "sweep 999 does not exist"),
        ("/runs/99999999999999999999999", 404, "does not exist"),
        ("/api/runs/0/curve", 404, "run 0 does not exist"),
        ("/sweeps/abc", 404, "no such page"),
        ("/api/sweeps/{grid}/curves?metric=nope", 400, "unknown metric 'nope'"),
        ("/api/sweeps/{grid}/curves?after=-1", 400, "after: -1 is outside"),
        ("/api/sweeps/{grid}/curves?points=ten", 400, "not a whole number"),
        ("/api/sweeps/{grid}/curves?groups=deadbeef", 400, "no configuration 'deadbeef'"),
        ("/sweeps/{grid}?status=exploded", 400, "unknown status 'exploded'"),
        ("/api/sweeps/{grid}/compare?a=colour%3Dred&b=hidden%3D2", 400, "unknown parameter"),
        ("/sweeps/{grid}/compare?a=learning_rate%3D9&b=hidden%3D2", 400, "matches no run"),
        ("/api/sweeps/{grid}/runs?group=x", 400, "no configuration 'x'"),
    ],
)
def test_bad_input_is_a_clear_4xx(
    client: TestClient, dashboard_db: Populated, path: str, status: int, words: str
) -> None:
    response = client.get(path.format(grid=dashboard_db.grid))
    assert response.status_code == status
    assert words in html.unescape(response.text)
    assert "Traceback" not in response.text


def test_read_only_and_escaped(client: TestClient, dashboard_db: Populated, tmp_path: Path) -> None:
    for route in client.app.routes:  # type: ignore[attr-defined]
        assert set(getattr(route, "methods", None) or {"GET"}) <= {"GET", "HEAD"}
    assert client.post("/").status_code == 405
    assert client.delete(f"/api/sweeps/{dashboard_db.grid}").status_code == 405
    for path in ("/", f"/sweeps/{dashboard_db.random}", f"/sweeps/{dashboard_db.random}/compare"):
        page = client.get(path)
        assert EVIL not in page.text  # as text: &lt;script&gt;, or \u003c in the JSON
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text
        assert "script-src 'self'" in page.headers["content-security-policy"]


def _database_digest(url: str) -> str:
    """The SQLite file's bytes; on PostgreSQL, what every row of bplab's tables says."""
    if url.startswith("sqlite"):
        return hashlib.sha256(Path(url.removeprefix("sqlite:///")).read_bytes()).hexdigest()
    parts = []
    with session_scope(url, readonly=True) as session:
        for table in ("sweeps", "runs", "epoch_metrics", "run_weights", "checkpoints"):
            rows = session.execute(text(f"SELECT * FROM {table} ORDER BY 1, 2")).all()
            parts.append(repr(rows))
    return hashlib.sha256("".join(parts).encode()).hexdigest()


def test_the_database_is_never_written(dashboard_db: Populated) -> None:
    before = _database_digest(dashboard_db.url)
    client = TestClient(create_app(dashboard_db.url))
    for url in ("/", f"/sweeps/{dashboard_db.grid}", f"/api/sweeps/{dashboard_db.grid}/curves"):
        assert client.get(url).status_code == 200
    assert _database_digest(dashboard_db.url) == before


def test_password_masked() -> None:
    url = "postgresql://bplab:s3cret-pw@127.0.0.1:5432/no_such_db_for_dashboard?password=x2"
    response = TestClient(create_app(url), raise_server_exceptions=False).get("/")
    assert response.status_code >= 500
    assert "s3cret-pw" not in response.text and "x2" not in response.text
    assert "bplab:***@127.0.0.1" in response.text
    assert "Traceback" not in response.text


def test_command_warns_off_loopback(
    monkeypatch: pytest.MonkeyPatch, dashboard_db: Populated
) -> None:
    import uvicorn

    from service.cli import cli
    from service.commands.dashboard import is_loopback

    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.4")
    served: list[dict[str, Any]] = []
    # Never bind a public address in a test: record what would have been served.
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: served.append(kw))
    env = {"BPLAB_DATABASE_URL": dashboard_db.url}
    quiet = CliRunner().invoke(cli, ["dashboard"], env=env)
    loud = CliRunner().invoke(cli, ["dashboard", "--host", "0.0.0.0", "--port", "9"], env=env)
    assert quiet.exit_code == 0 and "warning" not in quiet.output
    assert served[0] == {"host": "127.0.0.1", "port": 8765, "log_level": "warning"}
    assert loud.exit_code == 0 and "warning: listening on 0.0.0.0" in loud.output


def test_both_decimations_agree(dashboard_db: Populated) -> None:
    """The grouping query (any log_every) and the grid query (one log_every) pick the same
    bucket ends, on both dialects (PostgreSQL ranks rows, SQLite reads bare columns)."""
    from service.db import dashboard_queries as dq
    from service.db.session import session_scope

    with session_scope(dashboard_db.url, readonly=True) as session:
        ids = [r["id"] for r in dq.sweep_runs(session, dashboard_db.grid)]
        for width, after in ((7, 0), (21, 0), (35, 70)):
            grouped = dq.decimated_epochs(session, ids, "loss", width, after)
            grid = dq.decimated_epochs(session, ids, "loss", width, after, on_grid=True)
            assert grouped == grid and grouped
            assert all(e > after for _, e, _ in grouped)
