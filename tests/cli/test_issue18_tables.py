"""Issue 18 item 10: tables fit 80 columns (fewer columns, a note, --wide for all), sweep list
on an empty database, one timestamp style, sweep run's JSON names its sweep, run curve."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests.cli.conftest import Bplab, small_xor_spec

STAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")


@pytest.fixture
def bp(db_url: str, tmp_path: Path) -> Bplab:
    bp = Bplab(db_url, tmp_path)
    bp.env["COLUMNS"] = "80"
    return bp


def _widest(text: str) -> int:
    return max(len(line) for line in text.splitlines())


def test_tables_fit_80_columns_and_wide_shows_all(bp: Bplab) -> None:
    spec = bp.write_spec("s.yaml", small_xor_spec())
    ran = bp("sweep", "run", str(spec), "--workers", "2")
    assert _widest(ran.stdout) <= 80 and "--wide shows all" in ran.stdout
    for args in (["results", "1"], ["runs", "1"], ["sweep", "list"], ["run", "curve", "1"]):
        narrow = bp(*args).stdout
        assert _widest(narrow) <= 80, (args, narrow)
    narrow = bp("results", "1").stdout
    wide = bp("results", "1", "--wide").stdout
    assert "left out" in narrow and "wall s ┃" not in narrow  # named in the note only
    assert "wall s ┃" in wide and "left out" not in wide and _widest(wide) > 80


def test_sweep_list_on_an_empty_database_says_so(bp: Bplab) -> None:
    bp("db", "upgrade")
    out = bp("sweep", "list").stdout
    assert out.startswith("no sweeps in ") and out.count("\n") == 1


def test_one_timestamp_style_and_json_names_the_sweep(bp: Bplab) -> None:
    spec = bp.write_spec("s.yaml", small_xor_spec())
    rows = json.loads(bp("sweep", "run", str(spec), "--format", "json").stdout)
    assert {r["sweep_id"] for r in rows} == {1}
    listed = bp.json("sweep", "list")
    run = bp.json("run", "show", "1")[0]  # type: ignore[index]
    shown = bp.json("sweep", "show", "1")[0]  # type: ignore[index]
    stamps = [listed[0]["created_at"], run["created_at"], run["started_at"], run["finished_at"]]  # type: ignore[index]
    stamps += [shown["created_at"], shown["first_started_at"], shown["last_finished_at"]]
    assert all(STAMP.match(s) for s in stamps), stamps
    table = bp("run", "show", "1", "--wide").stdout
    assert re.search(r"started_at\s+│ \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ ", table)


def test_run_curve_is_a_table_with_tail(bp: Bplab) -> None:
    spec = bp.write_spec("s.yaml", small_xor_spec())
    bp("sweep", "run", str(spec))
    whole = bp.json("run", "curve", "1")
    table = bp("run", "curve", "1", "--tail", "3").stdout
    assert "┃ epoch" in table and "val_loss" not in table  # no validation split: no empty column
    epochs = [int(m) for m in re.findall(r"^│\s+(\d+) │", table, re.M)]
    assert epochs == [row["epoch"] for row in whole[-3:]]  # type: ignore[index]
    assert len(bp.json("run", "curve", "1", "--tail", "2")) == 2  # type: ignore[arg-type]
