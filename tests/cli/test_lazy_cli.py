"""The CLI imports a command's module only when that command runs or its own help is asked
(issue 18 item 11): `bplab --help` and `bplab sweep --help` import none of the heavy libraries,
and the lazy tables (service.commands) list exactly the commands the eager CLI had, with the
summaries the commands' own docstrings give. Start-up time itself is measured in
benchmarks/startup.py, never asserted here.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import click
import pytest
import yaml
from click.testing import CliRunner

from service.cli import cli
from service.commands import SWEEP_COMMANDS, TOP_COMMANDS
from service.commands.lazy import LazyGroup

HEAVY = ("numpy", "sqlalchemy", "celery", "optuna", "pandas", "matplotlib", "psycopg", "engine")

# Every command path of `bplab` before the group became lazy (main at 0688010), walked with
# list_commands/get_command; the lazy CLI must offer the same ones, no more, no fewer.
COMMANDS_BEFORE = """
best compare dashboard datasets db export inspect plot results run runs sql sweep worker
db current|db upgrade|run curve|run show|run weights
sweep cancel|sweep delete|sweep drive|sweep extend|sweep list|sweep note|sweep plan
sweep recover|sweep rename|sweep republish|sweep resume|sweep retry|sweep run|sweep show
sweep status|sweep submit|sweep tag|sweep watch
"""


def _expected_paths() -> set[str]:
    top, *nested = COMMANDS_BEFORE.strip().splitlines()
    return set(top.split()) | {path for line in nested for path in line.split("|")}


def _walk(group: click.Group, prefix: tuple[str, ...] = ()) -> dict[str, click.Command]:
    found: dict[str, click.Command] = {}
    ctx = click.Context(group)
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        assert command is not None, f"`bplab {' '.join((*prefix, name))}` does not load"
        found[" ".join((*prefix, name))] = command
        if isinstance(command, click.Group):
            found.update(_walk(command, (*prefix, name)))
    return found


def _imported_modules(*args: str) -> tuple[set[str], str]:
    """Top-level packages a fresh `python -X importtime -m service.cli ARGS` imported."""
    env = {**os.environ, "BPLAB_DATABASE_URL": "sqlite:///never-opened.db"}
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "service.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    modules = set()
    for line in done.stderr.splitlines():
        if line.startswith("import time:") and "|" in line:
            modules.add(line.rsplit("|", 1)[1].strip().split(".")[0])
    return modules, done.stdout


@pytest.mark.parametrize("args", [("--help",), ("sweep", "--help")])
def test_help_imports_no_heavy_library(args: tuple[str, ...], tmp_path: Path) -> None:
    modules, out = _imported_modules(*args)
    assert "click" in modules  # the import log was read: click is always there
    assert not modules & set(HEAVY), f"bplab {' '.join(args)} imported {modules & set(HEAVY)}"
    assert "Commands:" in out
    assert not (tmp_path / "never-opened.db").exists()


def test_a_command_help_imports_its_module_only_then() -> None:
    modules, out = _imported_modules("sweep", "plan", "--help")
    assert "Usage: bplab sweep plan [OPTIONS] SPEC" in out
    assert "sqlalchemy" in modules  # the command's own imports, now that it is asked for


def test_the_same_commands_as_before() -> None:
    assert set(_walk(cli)) == _expected_paths()


def test_every_command_help_works() -> None:
    for path in _walk(cli):
        result = CliRunner().invoke(cli, [*path.split(), "--help"])
        assert result.exit_code == 0, f"bplab {path} --help: {result.output}"
        assert f"Usage: cli {path} [OPTIONS]" in result.output


@pytest.mark.parametrize(
    ("table", "group_path"), [(TOP_COMMANDS, ""), (SWEEP_COMMANDS, "sweep")], ids=["top", "sweep"]
)
def test_each_summary_is_the_commands_own(table: dict, group_path: str) -> None:
    for name, entry in table.items():
        group = LazyGroup("probe", lazy_commands={name: entry})
        command = group.get_command(click.Context(group), name)
        assert command is not None and command.name == name, entry.target
        # at every width click may use, the table's summary prints as the command's own would
        for limit in (30, 45, 60, 80, 200):
            shown = click.Command(name, help=entry.summary).get_short_help_str(limit)
            assert shown == command.get_short_help_str(limit), (
                f"bplab {group_path} {name}: the summary in service.commands is out of date"
            )


@pytest.mark.parametrize("table", [TOP_COMMANDS, SWEEP_COMMANDS], ids=["top", "sweep"])
def test_group_help_is_the_eager_listing(table: dict) -> None:
    """A lazy group, none of its commands imported yet, lists them as click would eagerly."""
    lazy = LazyGroup("group", help="Some commands.", lazy_commands=table)
    eager = click.Group("group", help="Some commands.")
    probe = LazyGroup("probe", lazy_commands=table)
    for name in table:
        command = probe.get_command(click.Context(probe), name)
        assert command is not None
        eager.add_command(command, name)
    shown = CliRunner().invoke(lazy, ["--help"]).output
    assert not lazy.commands  # the listing imported nothing
    assert shown == CliRunner().invoke(eager, ["--help"]).output


def _sweep_group() -> click.Group:
    group = cli.get_command(click.Context(cli), "sweep")
    assert isinstance(group, click.Group)
    return group


def test_adaptive_routes_are_kept_lazily(tmp_path: Path) -> None:
    """Model-based search still takes `sweep plan` of a tpe spec in a fresh process."""
    from service.commands.search import ADAPTIVE_ROUTES

    routed = {e.adaptive_route for t in (TOP_COMMANDS, SWEEP_COMMANDS) for e in t.values()}
    assert routed - {None} == set(ADAPTIVE_ROUTES)
    spec = tmp_path / "tpe.yaml"
    spec.write_text(
        yaml.safe_dump(
            {
                "name": "lazy-tpe",
                "dataset": "xor",
                "method": "tpe",
                "run_cap": 3,
                "seeds": 2,
                "metric": {"name": "final_loss", "goal": "minimize", "aggregate": "mean"},
                "parameters": {
                    "learning_rate": {"distribution": "log_uniform", "min": 0.05, "max": 5.0},
                    "epochs": 50,
                },
            }
        )
    )
    env = {**os.environ, "BPLAB_DATABASE_URL": f"sqlite:///{tmp_path / 'bplab.db'}"}
    done = subprocess.run(
        [sys.executable, "-m", "service.cli", "sweep", "plan", str(spec)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "lazy-tpe: tpe search on xor, up to 3 configurations" in done.stdout
    assert not (tmp_path / "bplab.db").exists()  # plan writes nothing


def test_a_command_loaded_twice_is_routed_once() -> None:
    from service.commands.search import route

    plan = _sweep_group().get_command(click.Context(cli), "plan")
    assert plan is not None and getattr(plan.callback, "adaptive_route", None) == "sweep plan"
    routed = plan.callback
    route("sweep plan", plan)  # a second CLI object loading the same command
    assert plan.callback is routed


def test_an_unknown_command_is_a_usage_error() -> None:
    result = CliRunner().invoke(cli, ["sweeps", "--help"])
    assert result.exit_code == 2
    assert "No such command 'sweeps'" in result.output


def _freeze_count_after_loading(owns_process: bool) -> int:
    script = (
        "import gc, click\n"
        "from service import program\n"
        "from service.cli import cli\n"
        f"{'program.claim()' if owns_process else 'pass'}\n"
        "sweep = cli.get_command(click.Context(cli), 'sweep')\n"
        "sweep.get_command(click.Context(sweep), 'run')\n"
        "assert gc.isenabled()\n"
        "print(gc.get_freeze_count())\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return int(done.stdout)


def test_only_the_program_freezes_what_its_imports_made() -> None:
    """The bplab program (which claims its process: service.program) keeps its imports'
    objects out of later collections; a test or notebook loading commands in-process keeps its
    collector as it was."""
    assert _freeze_count_after_loading(True) > 100_000  # SQLAlchemy, NumPy, the models...
    assert _freeze_count_after_loading(False) == 0
