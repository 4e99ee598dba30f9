"""Issue 18, item 12: without scikit-learn, `bplab datasets` and the spec check give the same
install hint, brackets and all (rich markup used to eat '[bench]' from table cells)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

# sys.modules[name] = None makes every import of it fail: scikit-learn as if not installed.
WITHOUT_SKLEARN = (
    "import sys; sys.modules['sklearn'] = None; "
    "from service.cli import cli; cli(sys.argv[1:], prog_name='bplab')"
)
HINT = "pip install 'bplab[bench]'"


def _bplab(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "400", "BPLAB_DATABASE_URL": f"sqlite:///{tmp_path}/b.db"}
    return subprocess.run(
        [sys.executable, "-c", WITHOUT_SKLEARN, *args],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_two_install_hints_agree(tmp_path: Path) -> None:
    listed = _bplab(tmp_path, "datasets")
    assert listed.returncode == 0, listed.stderr
    iris = next(line for line in listed.stdout.splitlines() if line.startswith("│ iris "))
    assert HINT in iris, iris
    (tmp_path / "iris.yaml").write_text("dataset: iris\n")
    planned = _bplab(tmp_path, "sweep", "plan", "iris.yaml")
    assert planned.returncode == 2
    assert HINT in planned.stderr, planned.stderr
