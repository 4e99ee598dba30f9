"""Issue 23: the compose stack run for real. Not in the README's quick `python -m pytest` (the
`compose` marker is deselected by pyproject's addopts); `.ci/run` runs it as its own step:

    python -m pytest -m compose tests/compose_stack -s

It needs root, dockerd and debootstrap (Debian: apt-get install docker.io debootstrap), and
reaches Debian's archive and PyPI once to fill its cache (BPLAB_COMPOSE_CACHE).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

pytestmark = [pytest.mark.compose, pytest.mark.timeout(1500)]


def test_compose_stack_runs_a_sweep_and_survives_a_killed_worker(tmp_path: Path) -> None:
    missing = [tool for tool in ("dockerd", "docker", "debootstrap") if not shutil.which(tool)]
    if os.geteuid() != 0 or missing:
        pytest.fail(
            f"needs root and {missing or 'nothing more'}: apt-get install docker.io debootstrap "
            "(.ci/run does), then run as root"
        )
    from tests.compose_stack.harness import run_stack

    steps = run_stack(tmp_path)
    total = sum(seconds for _, seconds in steps)
    print("\n".join(f"  {seconds:6.0f} s  {name}" for name, seconds in steps))
    print(f"  {total:6.0f} s  in all")
