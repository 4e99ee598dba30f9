"""How the bplab program ends (service/program.py): the SQLite file whole on its own, the
command's exit code and output intact, atexit handlers run and running threads waited for,
though Python's teardown is skipped. The real program, as a subprocess."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

from tests.cli.conftest import BPLAB, small_xor_spec


def _run(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "BPLAB_BROKER_URL": ""}
    env.pop("BPLAB_DATABASE_URL", None)  # the embedded default: bplab.db in the directory
    return subprocess.run(
        [*BPLAB, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120
    )


def _statuses_and_rows(path: Path) -> tuple[list[tuple[str, int]], int]:
    conn = sqlite3.connect(path)
    try:
        statuses = conn.execute("SELECT status, count(*) FROM runs GROUP BY status").fetchall()
        rows = conn.execute("SELECT count(*) FROM epoch_metrics").fetchone()[0]
    finally:
        conn.close()
    return statuses, rows


def _write_spec(cwd: Path) -> Path:
    import yaml

    spec = cwd / "spec.yaml"
    spec.write_text(
        yaml.safe_dump(small_xor_spec(parameters={"learning_rate": [0.5, 2.0], "epochs": 40}))
    )
    return spec


def test_the_file_alone_holds_the_whole_sweep_after_sweep_run(tmp_path: Path) -> None:
    spec = _write_spec(tmp_path)
    done = _run(tmp_path, "sweep", "run", str(spec), "-w", "2", "--format", "json")
    assert done.returncode == 0, done.stderr
    # every byte of the results reached the pipe before the process ended
    assert len(json.loads(done.stdout)) == 2
    assert not (tmp_path / "bplab.db-wal").exists()
    copy = tmp_path / "copied.db"
    shutil.copyfile(tmp_path / "bplab.db", copy)  # what a user sends or uploads
    statuses, rows = _statuses_and_rows(copy)
    assert statuses == [("succeeded", 4)]
    assert rows == 4 * 40  # log_every 1: every epoch of every run


def test_the_file_is_whole_while_another_process_keeps_it_open(tmp_path: Path) -> None:
    """A reader with the file open (as `bplab dashboard` has during a sweep) keeps SQLite's log
    in place, but what the command committed is in bplab.db all the same."""
    spec = _write_spec(tmp_path)
    assert _run(tmp_path, "sweep", "run", str(spec), "-w", "1").returncode == 0
    reader = sqlite3.connect(f"file:{tmp_path / 'bplab.db'}?mode=ro", uri=True)
    try:
        assert reader.execute("SELECT count(*) FROM sweeps").fetchone() == (1,)
        done = _run(tmp_path, "sweep", "run", str(spec), "-w", "2")
        assert done.returncode == 0, done.stderr
        copy = tmp_path / "copied.db"
        shutil.copyfile(tmp_path / "bplab.db", copy)
        statuses, rows = _statuses_and_rows(copy)
        assert statuses == [("succeeded", 8)]
        assert rows == 8 * 40
    finally:
        reader.close()


def test_a_reading_command_folds_a_log_left_by_a_killed_writer(tmp_path: Path) -> None:
    spec = _write_spec(tmp_path)
    assert _run(tmp_path, "sweep", "run", str(spec), "-w", "1").returncode == 0
    # a writer that dies with its connection open (kill -9) leaves its last commit in the log
    killed = textwrap.dedent(
        f"""
        import os, sqlite3
        conn = sqlite3.connect({str(tmp_path / "bplab.db")!r}, isolation_level=None)
        conn.execute("UPDATE sweeps SET name = 'renamed'")
        os._exit(0)
        """
    )
    subprocess.run([sys.executable, "-c", killed], check=True)
    assert (tmp_path / "bplab.db-wal").stat().st_size > 0
    listed = _run(tmp_path, "sweep", "list", "--format", "json")
    assert listed.returncode == 0, listed.stderr
    assert json.loads(listed.stdout)[0]["name"] == "renamed"
    assert not (tmp_path / "bplab.db-wal").exists()
    conn = sqlite3.connect(tmp_path / "bplab.db")
    try:
        assert conn.execute("SELECT name FROM sweeps").fetchone() == ("renamed",)
    finally:
        conn.close()


def test_a_library_caller_ending_normally_leaves_the_file_whole(tmp_path: Path) -> None:
    """A notebook or script using the database (here a write, then a read-only read last)
    gets the same at its normal exit: service.db.session folds the log at exit."""
    url = f"sqlite:///{tmp_path / 'lib.db'}"
    script = textwrap.dedent(
        f"""
        from sqlalchemy import text
        from service.db.session import session_scope
        with session_scope({url!r}) as session:
            session.execute(text(
                "INSERT INTO sweeps (name, dataset, method, spec, swept, n_runs, backend)"
                " VALUES ('lib', 'xor', 'grid', '{{}}', '[]', 0, 'local')"
            ))
        with session_scope({url!r}, readonly=True) as session:
            assert session.execute(text("SELECT name FROM sweeps")).scalar_one() == "lib"
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert not (tmp_path / "lib.db-wal").exists()
    conn = sqlite3.connect(tmp_path / "lib.db")
    try:
        assert conn.execute("SELECT name FROM sweeps").fetchall() == [("lib",)]
    finally:
        conn.close()


def test_exit_codes_and_messages_survive_the_quick_exit(tmp_path: Path) -> None:
    missing = _run(tmp_path, "sweep", "run", str(tmp_path / "nope.yaml"))
    assert missing.returncode == 2
    assert "nope.yaml" in missing.stderr
    assert not (tmp_path / "bplab.db").exists()  # nothing half-written
    unknown = _run(tmp_path, "no-such-command")
    assert unknown.returncode == 2 and "No such command" in unknown.stderr
    helped = _run(tmp_path, "--help")
    assert helped.returncode == 0 and "sweep" in helped.stdout


def _end_program(tmp_path: Path, body: str) -> subprocess.CompletedProcess[str]:
    script = textwrap.dedent(
        f"""
        import atexit, pathlib, threading, time
        from service.program import end_program
        out = pathlib.Path({str(tmp_path)!r})
        {textwrap.indent(textwrap.dedent(body), " " * 8).strip()}
        """
    )
    return subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60
    )


def test_atexit_handlers_run_before_the_process_ends(tmp_path: Path) -> None:
    done = _end_program(
        tmp_path,
        """
        atexit.register(lambda: (out / "atexit").write_text("ran"))
        print("said", end="")  # buffered: flushed before os._exit
        end_program(SystemExit(3))
        """,
    )
    assert done.returncode == 3
    assert done.stdout == "said"
    assert (tmp_path / "atexit").read_text() == "ran"


def test_a_running_thread_gets_the_normal_exit_which_waits_for_it(tmp_path: Path) -> None:
    done = _end_program(
        tmp_path,
        """
        def late():
            time.sleep(0.5)
            (out / "thread").write_text("finished")
        threading.Thread(target=late).start()
        end_program(SystemExit("a message"))
        """,
    )
    assert done.returncode == 1
    assert "a message" in done.stderr
    assert (tmp_path / "thread").read_text() == "finished"
