"""How long `bplab ... --help` takes: the start-up cost every command pays before its work.

Issue 18 item 11 asks for `bplab --help` within 0.3 s. This measures it (a benchmark, never a
timed test: the figure depends on the machine and its load) beside Python's own floor
(`python -c pass` and `python -c "import click"`), which no change to bplab can go below, and
lists the slowest imports of `service.cli` (python -X importtime) so a regression shows where.

    python benchmarks/startup.py [--repeat 7]

Each command is run --repeat times in a fresh process; the median wall time is reported.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time

COMMANDS = {
    "python -c pass (floor)": [sys.executable, "-c", "pass"],
    "python -c 'import click'": [sys.executable, "-c", "import click"],
    "bplab --help": [sys.executable, "-m", "service.cli", "--help"],
    "bplab sweep --help": [sys.executable, "-m", "service.cli", "sweep", "--help"],
    "bplab results --help": [sys.executable, "-m", "service.cli", "results", "--help"],
    "bplab run curve --help": [sys.executable, "-m", "service.cli", "run", "curve", "--help"],
}


def median_seconds(argv: list[str], repeat: int) -> float:
    times = []
    env = {**os.environ, "BPLAB_DATABASE_URL": "sqlite:///bplab-startup-bench.db"}
    for _ in range(repeat):
        start = time.perf_counter()
        subprocess.run(argv, env=env, check=True, capture_output=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def slowest_imports(n: int = 12) -> list[tuple[float, str]]:
    """The n imports with the largest cumulative time when service.cli is imported."""
    out = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", "import service.cli"],
        capture_output=True,
        text=True,
        check=True,
    ).stderr
    rows = []
    for line in out.splitlines():
        parts = line.split("|")
        if len(parts) == 3 and parts[1].strip().isdigit():
            rows.append((int(parts[1]) / 1e6, parts[2].strip()))
    # only top-level packages and service modules, the ones a lazy import can move
    rows = [r for r in rows if "." not in r[1] or r[1].startswith("service.")]
    return sorted(rows, reverse=True)[:n]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    for name, argv in COMMANDS.items():
        print(f"{name:<28} {median_seconds(argv, args.repeat):7.3f} s")
    print("\nslowest imports under `import service.cli` (cumulative):")
    for seconds, module in slowest_imports():
        print(f"  {seconds:7.3f} s  {module}")


if __name__ == "__main__":
    main()
