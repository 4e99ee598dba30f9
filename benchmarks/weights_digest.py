"""The sha256 of the final weights of every run of every example spec, as one tree trains them.

Run by hand to check that a change moves no number (issue 14: "every run of
examples/rumelhart1986/ gives the same weights as before the change"):

    python benchmarks/weights_digest.py /path/to/tree_before > before.txt
    python benchmarks/weights_digest.py /path/to/tree_after > after.txt
    diff before.txt after.txt

Each spec is trained with ``python -m service.cli sweep run`` in a fresh temporary directory
and SQLite file, with PYTHONPATH set to the tree, so the tree's own code (engine and service)
does the work; the child prints where its engine came from, and the script refuses to go on
if that is not the tree. Prints one line per run, ``spec  run  sha256``, where ``run`` is
the run's configuration key and seed (ids depend on the order of insertion, keys do not).

``--specs DIR`` takes the specs from another tree (so that both trees train the same
specs); ``--engine DIR`` trains with another engine package under the tree's service
(to isolate an engine change from concurrent service changes); ``--epochs SPEC=N``
caps a spec's epochs (for slow specs: use the same caps before and after).
"""

from __future__ import annotations

import argparse
import os
import re
import sqlite3
import subprocess
import sys
import tempfile
from pathlib import Path

SPEC_GLOBS = ("examples/*.yaml", "examples/rumelhart1986/*.yaml")


def _code_root(tree: Path, engine: Path | None, tmp: Path) -> Path:
    """The directory to put on PYTHONPATH: the tree, or the tree with another engine."""
    if engine is None:
        return tree
    root = tmp / "code"
    root.mkdir()
    for entry in tree.iterdir():
        if entry.name != "engine":
            (root / entry.name).symlink_to(entry)
    (root / "engine").symlink_to(engine.resolve())
    return root


def _spec_file(spec: Path, cap: int | None, tmp: Path) -> Path:
    if cap is None:
        return spec
    text = spec.read_text()
    capped, count = re.subn(r"(?m)^(\s*epochs:\s*)\d+", rf"\g<1>{cap}", text)
    if count != 1:
        raise SystemExit(f"{spec}: expected one 'epochs:' line to cap, found {count}")
    out = tmp / spec.name
    out.write_text(capped)
    return out


def digest(code: Path, spec: Path, cap: int | None, workers: int) -> list[tuple[str, str]]:
    """(run, sha256) for every run of ``spec`` trained by the code under ``code``."""
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        db = tmp / "digest.db"
        env = dict(os.environ, PYTHONPATH=str(code), BPLAB_DATABASE_URL=f"sqlite:///{db}")
        env.pop("BPLAB_BROKER_URL", None)
        where = subprocess.run(
            [sys.executable, "-c", "import engine, service; print(engine.__file__)"],
            cwd=tmp,
            env=env,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        if not Path(where).resolve().is_relative_to((code / "engine").resolve()):
            raise SystemExit(f"the engine imported is {where}, not the one under {code}")
        cmd = [sys.executable, "-m", "service.cli", "sweep", "run", "--workers", str(workers)]
        done = subprocess.run(
            [*cmd, str(_spec_file(spec, cap, tmp))], cwd=tmp, env=env, capture_output=True
        )
        if done.returncode != 0:
            raise SystemExit(f"{spec}: sweep run failed:\n{done.stderr.decode()[-2000:]}")
        with sqlite3.connect(db) as con:
            rows = con.execute(
                "SELECT r.config_key, r.seed, w.sha256 FROM runs r "
                "LEFT JOIN run_weights w ON w.run_id = r.id ORDER BY r.config_key, r.seed"
            ).fetchall()
    return [(f"{key[:12]}/seed{seed}", sha or "-") for key, seed, sha in rows]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("tree", type=Path)
    parser.add_argument("--specs", type=Path, help="take the specs from this tree")
    parser.add_argument("--engine", type=Path, help="use this engine package instead")
    parser.add_argument("--epochs", action="append", default=[], metavar="SPEC=N")
    parser.add_argument("--only", action="append", default=[], metavar="SPEC")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()
    tree = args.tree.resolve()
    caps = {k: int(v) for k, v in (item.split("=", 1) for item in args.epochs)}
    specs_root = (args.specs or tree).resolve()
    specs = sorted(p for g in SPEC_GLOBS for p in specs_root.glob(g))
    if args.only:
        specs = [p for p in specs if p.name in args.only or p.stem in args.only]
    with tempfile.TemporaryDirectory() as tmp_name:
        code = _code_root(tree, args.engine, Path(tmp_name))
        for spec in specs:
            name = str(spec.relative_to(specs_root))
            cap = caps.get(spec.name, caps.get(spec.stem))
            for run, sha in digest(code, spec, cap, args.workers):
                print(f"{name}\t{run}\t{sha}", flush=True)


if __name__ == "__main__":
    main()
