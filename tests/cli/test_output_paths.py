"""Issue 18, item 7: an -o path that cannot be written is one line, exit 2, for `run weights`,
`plot` and `export`; `run weights -o x.txt` writes x.txt (np.savez alone would add .npz)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.cli.conftest import Bplab, small_xor_spec

COMMANDS = {
    "run weights": (["run", "weights", "1", "-o"], "w.npz"),
    "plot": (["plot", "1", "-o"], "p.png"),
    "export": (["export", "1", "-o"], "e.csv"),
}


@pytest.fixture
def finished(bplab: Bplab) -> Bplab:
    spec = bplab.write_spec("xor.yaml", small_xor_spec())
    bplab("sweep", "run", str(spec), "--workers", "1")
    return bplab


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize("where", ["missing-directory", "a-directory", "unwritable"])
def test_unwritable_output_is_one_line_exit_2(
    finished: Bplab, tmp_path: Path, command: str, where: str
) -> None:
    args, name = COMMANDS[command]
    target = {
        "missing-directory": str(tmp_path / "missing" / name),
        "a-directory": str(tmp_path / f"dir{Path(name).suffix}"),
        # /proc takes no new files, even for root (tests may run as root, where chmod is moot)
        "unwritable": f"/proc/{name}",
    }[where]
    if where == "a-directory":
        Path(target).mkdir()
    result = finished(*args, target, expect=2)
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, lines
    assert target in lines[0] or str(Path(target).parent) in lines[0], lines
    assert not (tmp_path / "missing").exists()


def test_weights_go_to_the_file_named(finished: Bplab, tmp_path: Path) -> None:
    target = tmp_path / "weights.txt"
    result = finished("run", "weights", "1", "-o", str(target))
    assert f"to {target}" in result.stderr
    assert target.exists() and not Path(f"{target}.npz").exists()
    with np.load(target) as z:
        assert sorted(z.files) == ["W1", "W2", "b1", "b2"]
