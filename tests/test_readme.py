"""The README stays true: its commands exist, its tables match the code, CI runs its tests."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from service.cli import cli
from service.spec import defaults_table

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def test_parameters_table_matches_the_spec_defaults() -> None:
    block = README.split("<!-- parameters-table:start -->")[1].split(
        "<!-- parameters-table:end -->"
    )[0]
    rows = [line for line in block.strip().splitlines()[2:]]
    documented = [tuple(cell.strip() for cell in row.strip("|").split(" | ")) for row in rows]
    assert documented == [tuple(map(str, row)) for row in defaults_table()]


def test_ci_runs_the_readme_test_command() -> None:
    commands = re.findall(r"```bash\n(.*?)\n```", README, flags=re.S)
    assert commands[1] == "python -m pytest"
    ci = (ROOT / ".ci" / "run").read_text().strip().splitlines()
    # the README's command, exactly, as its own line (the compose stack is a later step)
    assert commands[1] in ci
    assert "bplab sweep run examples/xor.yaml" in commands[0]
    assert (ROOT / "examples" / "xor.yaml").exists()


CLI_COMMANDS = sorted(set(re.findall(r"`bplab ((?:[a-z]+)(?: [a-z]+)?)", README)))


@pytest.mark.parametrize("command", CLI_COMMANDS)
def test_every_documented_command_exists(command: str) -> None:
    words = command.split()
    result = CliRunner().invoke(cli, [*words, "--help"])
    if (
        result.exit_code != 0 and len(words) == 2
    ):  # "bplab runs SWEEP_ID": the 2nd word is an argument
        result = CliRunner().invoke(cli, [words[0], "--help"])
    assert result.exit_code == 0, f"`bplab {command}` in README: {result.output}"


def test_documented_commands_are_many() -> None:
    assert len(CLI_COMMANDS) >= 15
