"""Pruned runs marked where they stopped on the sweep page's chart (issue 17), in real Chromium
against `bplab dashboard` on a real SQLite database whose sweeps an early_terminate rule
pruned (unit: config and unit: run) or did not (no rule).

The marks are read back from the page: one element per configuration and epoch over the
uPlot canvas, at the epoch the database recorded for those runs, carrying the value and the
threshold the rule stored; the legend says the same. A sweep without pruning has none.
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.pruning.helpers import runs, train, xor_spec
from tests.web.conftest import Server, start_server, stop_server

ASHA = {"type": "asha", "min_epochs": 10, "reduction_factor": 3}


@dataclass
class PrunedSweeps:
    url: str
    by_config: int  # asha, unit: config
    by_run: int  # asha, unit: run
    plain: int  # no early_terminate


@pytest.fixture(scope="module")
def pruned_db(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrunedSweeps]:
    from service.db.migrate import upgrade_engine
    from service.db.session import dispose_engines, make_engine

    url = f"sqlite:///{tmp_path_factory.mktemp('pruned') / 'bplab.db'}"
    engine = make_engine(url)
    upgrade_engine(engine)
    engine.dispose()
    by_config, _ = train(url, xor_spec({**ASHA, "unit": "config"}, seeds=2, epochs=120))
    by_run, _ = train(url, xor_spec({**ASHA, "unit": "run"}, seeds=3, epochs=120))
    plain, _ = train(url, xor_spec(None, seeds=2, epochs=120))
    yield PrunedSweeps(url, by_config, by_run, plain)
    dispose_engines(url)


@pytest.fixture
def server(pruned_db: PrunedSweeps, tmp_path: Path) -> Iterator[Server]:
    s = start_server(pruned_db.url, tmp_path)
    yield s
    stop_server(s)


def _open(page: Any, base: str, sweep_id: int) -> None:
    page.goto(f"{base}/sweeps/{sweep_id}")
    page.wait_for_selector("body[data-ready='1']", state="attached", timeout=15_000)


def _marks(page: Any) -> list[dict[str, Any]]:
    return page.eval_on_selector_all(
        "#chart .pruned-mark",
        """nodes => nodes.map(n => ({group: n.dataset.group, epoch: Number(n.dataset.epoch),
            y: Number(n.dataset.y), runs: Number(n.dataset.runs), title: n.title,
            visible: n.getBoundingClientRect().width > 0}))""",
    )


def _expected(page: Any, url: str, sweep_id: int) -> dict[tuple[str, int], list[dict]]:
    """{(group id, epoch): the pruned runs stopped there} for the configurations on the chart,
    from the database; the page's own table maps its group ids to learning rates."""
    group_of = dict(page.evaluate("state.rows.map(r => [r.learning_rate, r.group])"))
    plotted = set(page.evaluate("state.default_groups"))
    out: dict[tuple[str, int], list[dict]] = {}
    for r in runs(url, sweep_id):
        gid = group_of[r["learning_rate"]]
        if r["status"] == "pruned" and gid in plotted:
            out.setdefault((gid, r["pruned_epoch"]), []).append(r)
    return out


def _curves(base: str, sweep_id: int, groups: list[str]) -> dict[str, Any]:
    query = f"metric=loss&groups={','.join(groups)}&after=0&points=400"
    with urllib.request.urlopen(f"{base}/api/sweeps/{sweep_id}/curves?{query}") as response:
        return json.load(response)


def _shown(value: float) -> str:
    """A number as the page prints it (bplab.fmt: 4 significant digits)."""
    return repr(float(f"{value:.4g}"))


def _marks_where_the_runs_stopped(
    page: Any, server: Server, url: str, sweep_id: int
) -> tuple[list[dict], dict[tuple[str, int], list[dict]]]:
    """Opens the sweep's page; its marks, checked to be one per configuration and epoch the
    database says runs were pruned at, each on that configuration's mean curve; and those
    runs by (group, epoch)."""
    _open(page, server.base, sweep_id)
    expected = _expected(page, url, sweep_id)
    assert expected, "the rule pruned nothing among the plotted configurations"
    marks = _marks(page)
    assert {(m["group"], m["epoch"]) for m in marks} == set(expected)
    data = _curves(server.base, sweep_id, page.evaluate("state.default_groups"))
    curves = {g["id"]: dict(zip(g["epochs"], g["mean"], strict=True)) for g in data["groups"]}
    for m in marks:
        assert m["visible"]
        assert m["runs"] == len(expected[(m["group"], m["epoch"])])
        # on the configuration's mean curve, at the epoch the runs stopped
        assert m["y"] == pytest.approx(curves[m["group"]][m["epoch"]], rel=1e-9)
    assert page.locator("#chart").get_attribute("data-pruned-marks") == str(len(marks))
    return marks, expected


def test_unit_config_marks_each_pruned_configuration_once(
    page: Any, server: Server, pruned_db: PrunedSweeps
) -> None:
    marks, expected = _marks_where_the_runs_stopped(
        page, server, pruned_db.url, pruned_db.by_config
    )
    for m in marks:
        stopped = expected[(m["group"], m["epoch"])]
        assert len(stopped) == 2  # both seeds stop together
        run = stopped[0]
        assert f"pruned at epoch {m['epoch']}, all 2 seeds (asha, unit: config)" in m["title"]
        assert f"mean loss over seeds {_shown(run['pruned_value'])}" in m["title"]
        assert f"missed the threshold {_shown(run['pruned_threshold'])}" in m["title"]
        legend = page.locator(f"#legend label[data-group='{m['group']}'] .pruned-note")
        assert legend.inner_text().startswith(f"pruned at epoch {m['epoch']} (mean loss ")
    assert "every seed stopped" in page.locator("#legend .pruned-key").inner_text()
    # still there, and in the same places, on a linear scale
    page.select_option("#scale", "linear")
    assert {(m["group"], m["epoch"]) for m in _marks(page)} == set(expected)
    assert not page.errors, page.errors


def test_unit_run_marks_the_seeds_where_each_stopped(
    page: Any, server: Server, pruned_db: PrunedSweeps
) -> None:
    marks, expected = _marks_where_the_runs_stopped(page, server, pruned_db.url, pruned_db.by_run)
    for m in marks:
        stopped = expected[(m["group"], m["epoch"])]
        assert (
            f"{len(stopped)} of 3 seeds pruned at epoch {m['epoch']} (asha, unit: run)"
            in (m["title"])
        )
        for run in stopped:
            assert (
                f"seed {run['seed']} (run {run['id']}): loss {_shown(run['pruned_value'])} "
                f"missed the threshold {_shown(run['pruned_threshold'])}"
            ) in m["title"]
    assert "the mean goes on over the others" in page.locator("#legend .pruned-key").inner_text()
    assert not page.errors, page.errors


def test_a_sweep_without_pruning_has_no_marks(
    page: Any, server: Server, pruned_db: PrunedSweeps
) -> None:
    _open(page, server.base, pruned_db.plain)
    assert int(page.locator("#chart").get_attribute("data-drawn")) > 10  # the chart is drawn
    assert page.locator("#chart .pruned-mark").count() == 0
    assert page.locator("#chart").get_attribute("data-pruned-marks") == "0"
    assert page.locator("#legend .pruned-key").count() == 0
    data = _curves(server.base, pruned_db.plain, page.evaluate("state.default_groups"))
    assert data["pruned"] == [] and all(g["pruned"] == [] for g in data["groups"])
    assert not page.errors, page.errors
