"""The dependency rules of DESIGN.md, as import-linter contracts (pyproject.toml), run in the
suite: `lint-imports` must keep every contract but the known-broken ones listed here."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CONTRACTS = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"][
    "contracts"
]


def _lint_imports(*contract_ids: str) -> subprocess.CompletedProcess[str]:
    # The script beside this interpreter (the venv's), else the one on PATH.
    script = Path(sys.executable).with_name("lint-imports")
    command = str(script) if script.exists() else shutil.which("lint-imports")
    assert command, "lint-imports is not installed: pip install -e '.[test]'"
    arguments = [arg for cid in contract_ids for arg in ("--contract", cid)]
    return subprocess.run(
        [command, "--no-cache", *arguments],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_the_rules_are_all_there() -> None:
    assert {c["id"] for c in CONTRACTS} >= {
        "engine-standalone",
        "service-not-worker",
        "db-not-cli",
        "worker-acyclic",
        "commands-acyclic",
    }


def test_import_contracts_are_kept() -> None:
    kept = [c["id"] for c in CONTRACTS]
    result = _lint_imports(*kept)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"Contracts: {len(kept)} kept, 0 broken." in result.stdout
