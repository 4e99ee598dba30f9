"""Run every 1986 sweep afresh and print the README's tables, with the commit they were made at.

    python examples/rumelhart1986/regenerate.py [--db r1986.db] [--workers 2] [--readme README.md]

Each spec of this directory runs through `bplab sweep run` into one SQLite database (use a
new file; --reuse only re-reads one), and the newest sweep of each spec is tabulated with
`summarize.py`'s figures. Prints two
markdown tables, every experiment and the family-trees generalisation, headed by the commit
and the date; --readme puts them between the README's `r1986-tables` markers. Times are each
whole `bplab sweep run` (process start-up included), kept with the commit in DB.times.json
for --reuse.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

sys.path.insert(0, str(Path(__file__).parent))
from summarize import summarize  # noqa: E402

HERE = Path(__file__).parent
ROOT = HERE.parents[1]
START, END = "<!-- r1986-tables:start -->", "<!-- r1986-tables:end -->"


def chauvin(hidden: int) -> str:
    """Chauvin's P = 280 - 33 log2 H presentations (PDP vol. 1, ch. 8)."""
    return f"P = 280 - 33 log2 {hidden} = {280 - 33 * math.log2(hidden):.0f} presentations"


# spec -> (experiment, the paper's figure); a callable gets the configuration.
EXPERIMENTS: dict[str, tuple[str, Any]] = {
    "symmetry": ("symmetry", "1,425 sweeps (one run)"),
    "xor_direct": ("XOR, direct connections", "558 sweeps"),
    "xor_221": ("XOR", "occasional local minima"),
    "xor_per_pattern": (
        "XOR, per pattern",
        lambda c: (
            "~247 presentations (Chauvin, H = 2); a local minimum after 6,587"
            if c["learning_rate"] == 0.25
            else "escapes that local minimum"
        ),
    ),
    "xor_hidden_units": ("XOR, hidden units (Chauvin)", lambda c: chauvin(c["hidden"][0])),
    "parity4": ("parity", "2,825 presentations (one run)"),
    "parity4_per_pattern": ("parity, per pattern", "2,825 presentations (one run)"),
    "encoder838": ("encoder", "learns"),
    "encoder838_per_pattern": ("encoder, per pattern", "learns (no count given)"),
    "negation": ("negation", "learns"),
    "addition2": ("two-bit addition", "local minima with 2 hidden units"),
    "family_trees": ("family trees, as the Nature text states it", "1,500 sweeps"),
    "family_trees_faithful": ("family trees, eps 0.05 after sweep 20, init 2.0", "1,500 sweeps"),
    "family_trees_adjusted": ("family trees, adjusted (cross entropy, no decay)", "1,500 sweeps"),
    # PDP vol. 1 ch. 8's shared-weight demonstrations (issue 21): the chapter reports that
    # they learn and shows the kernels and sequences found, without counts we could cite
    "tc": ("T-C problem", "learns; translation-invariant feature detectors"),
    "sequences": ("sequence completion", "learns to complete the sequences"),
    "timed_sequences": ("sequence completion, timing variant", "learns"),
}
FAMILY = ("family_trees", "family_trees_faithful", "family_trees_adjusted")
PAPER_HELD_OUT = "4/4 and 3/4 (two runs)"


def _num(x: float) -> str:
    """1,234 or 1,234.5 or 1,234.75 (quartiles fall between seeds)."""
    return f"{x:,.2f}".rstrip("0").rstrip(".")


def _net(config: dict[str, Any], n_in: int, n_out: int) -> str:
    hidden = "-".join(str(h) for h in config["hidden"])
    if config.get("kernels"):
        field, wrap = config["field"], " wrapping" if config["wrap"] else ""
        tied = f"{n_in}-({config['kernels']} shared {field}x{field}{wrap} kernels)"
        return "-".join([tied, *(str(h) for h in config["hidden"]), str(n_out)])
    if config.get("recurrent"):
        from service.datasets import cached_dataset

        steps = int(cached_dataset(config["dataset"]).meta["steps"])
        return f"{n_in // steps}-{hidden}(recurrent)-{n_out // steps}, {steps} steps"
    if config.get("input_groups"):
        blocks = ", ".join(
            f"{g}->{h}" for g, h in zip(config["input_groups"], config["group_hidden"], strict=True)
        )
        rest = "-".join(str(h) for h in config["hidden"][1:])
        return f"({blocks})-{rest}-{n_out}"
    skip = " + input->output" if config["skip_connections"] else ""
    return f"{n_in}-{hidden}-{n_out}{skip}"


def _rates(config: dict[str, Any]) -> str:
    text = f"{config['learning_rate']:g}, {config['momentum']:g}"
    for phase in config.get("schedule") or []:
        early = f"{phase.get('learning_rate', config['learning_rate']):g}, "
        early += f"{phase.get('momentum', config['momentum']):g}"
        text = f"{early} for {phase['until']} sweeps, then {text}"
    extras = [f"{k} {config[k]:g}" for k in ("decay", "error_margin") if config.get(k)]
    if config["cost"] != "sse":
        extras.append(config["cost"].replace("_", " "))
    if config["batch_size"] == 1:
        extras.append("per pattern")
    if config["activation"] != "sigmoid":
        extras.append(f"{config['activation']} hidden units")
    return "; ".join([text, *extras])


def _solve_cell(row: dict[str, Any]) -> str:
    q = row["sweeps_to_solve_q1_median_q3"]
    if q is None:
        return "-"
    cell = f"{_num(q[0])} / {_num(q[1])} / {_num(q[2])} ({_num(row['slowest_solve'])})"
    p = row.get("presentations_to_solve_q1_median_q3")
    if p is not None:
        cell += f"; presentations {_num(p[0])} / {_num(p[1])} / {_num(p[2])}"
    return cell


def _spread(row: dict[str, Any], rule: str) -> str:
    hist = row[f"{rule}_histogram"]
    return f"{row[f'{rule}_mean']:.2f} (4/4: {hist['4']}, 3/4: {hist['3']})"


def tables(url: str, names: list[str], sweep_ids: dict[str, int], times: dict) -> str:
    """The two markdown tables from the database's sweeps."""
    from service.datasets import training_data

    main = [
        "| experiment (spec) | net | eps, alpha | paper | solved | "
        "sweeps to solve: Q1 / median / Q3 (slowest) | time |",
        "|---|---|---|---|---|---|---|",
    ]
    family = [
        "| spec | eps, alpha | init | solved (0.8/0.2) | training right: 0.8/0.2, 0.5 rule "
        "(median of 100) | held-out right, 0.8/0.2 rule: mean of 4 (seeds 4/4, 3/4) | "
        "held-out right, most active output: mean of 4 (seeds 4/4, 3/4) | "
        "held-out right, 0.5 rule: mean of 4 (seeds 4/4, 3/4) | paper |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name in names:
        label, paper = EXPERIMENTS[name]
        rows = summarize(url, sweep_ids[name], patterns=name in FAMILY)
        shown: tuple[str, str] = ("", "")
        for i, row in enumerate(rows):
            config = _config(url, sweep_ids[name], row["config"])
            X, Y, _ = training_data(config, 0)
            first = i == 0
            net = _net(config, X.shape[1], Y.shape[1])
            figure = paper(config) if callable(paper) else paper
            # a configuration's net and paper figure only where they differ from the row above
            net, figure, shown = (
                "" if net == shown[0] else net,
                "" if figure == shown[1] else figure,
                (net, figure),
            )
            solved = f"{row['solved']}/{row['runs']}"
            if row["solved"] < row["runs"]:
                solved += f" in {config['epochs']:,}"
            main.append(
                f"| {f'{label} (`{name}.yaml`)' if first else ''} | "
                f"{net} | {_rates(config)} | {figure} | "
                f"{solved} | {_solve_cell(row)} | "
                f"{f'{times[name]:.0f} s' if first and name in times else ''} |"
            )
            if name in FAMILY:
                family.append(
                    f"| `{name}.yaml` | {_rates(config)} | [-{config['init']:g}, "
                    f"{config['init']:g}] | {solved} | {_num(row['train_right_median'])}, "
                    f"{_num(row['train_right_05_median'])} | {_spread(row, 'test_right')} | "
                    f"{_spread(row, 'test_top')} | {_spread(row, 'test_right_05')} | "
                    f"{PAPER_HELD_OUT if first else ''} |"
                )
    return "\n".join(main) + "\n\n" + "\n".join(family) + "\n"


def _config(url: str, sweep_id: int, swept: dict[str, Any]) -> dict[str, Any]:
    """The run configuration of one of the sweep's configurations."""
    from service.db import repository as repo
    from service.db.session import session_scope

    with session_scope(url) as session:
        for run in repo.list_runs(session, sweep_id):
            if all(run.config[k] == v for k, v in swept.items()):
                return dict(run.config)
    raise click.ClickException(f"sweep {sweep_id} has no run with {swept}")


def commit() -> str:
    """The checkout's commit, '+changes' when its tracked files differ from it."""
    head = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()
    dirty = subprocess.run(["git", "diff", "--quiet", "HEAD"], cwd=ROOT).returncode != 0
    return head + ("+changes" if dirty else "")


def run_spec(path: Path, url: str, workers: int) -> float:
    """`bplab sweep run` of one spec; its wall time in seconds."""
    start = time.perf_counter()
    subprocess.run(
        ["bplab", "sweep", "run", str(path), "--workers", str(workers), "--format", "json"],
        env={**os.environ, "BPLAB_DATABASE_URL": url},
        check=True,
        stdout=subprocess.DEVNULL,
    )
    return time.perf_counter() - start


def latest_sweeps(url: str) -> dict[str, int]:
    """{spec name: id of the newest sweep of that spec's `name`}."""
    import yaml

    from service.db import repository as repo
    from service.db.session import session_scope

    with session_scope(url) as session:
        by_name = {s["name"]: int(s["id"]) for s in repo.list_sweeps(session)}
    out = {}
    for name in EXPERIMENTS:
        spec_name = yaml.safe_load((HERE / f"{name}.yaml").read_text())["name"]
        if spec_name in by_name:
            out[name] = by_name[spec_name]
    return out


@click.command()
@click.option("--db", default="r1986.db", type=click.Path(dir_okay=False), show_default=True)
@click.option("--workers", default=2, show_default=True)
@click.option("--reuse", is_flag=True, help="Do not run: tabulate the sweeps already in --db.")
@click.option("--only", multiple=True, help="Run only these specs (by file stem).")
@click.option("--readme", type=click.Path(exists=True, dir_okay=False), help="Update its tables.")
def main(db: str, workers: int, reuse: bool, only: tuple[str, ...], readme: str | None) -> None:
    url = f"sqlite:///{Path(db).resolve()}"
    times_path = Path(f"{db}.times.json")
    times = json.loads(times_path.read_text()) if times_path.exists() else {}
    unknown = set(only) - set(EXPERIMENTS)
    if unknown:
        raise click.BadParameter(f"no such spec: {', '.join(sorted(unknown))}", param_hint="--only")
    if not reuse:
        # the commit the runs are made at, kept for --reuse (the checkout may move on)
        times["commit"] = commit()
        for name in only or EXPERIMENTS:
            click.echo(f"running {name}.yaml", err=True)
            times[name] = run_spec(HERE / f"{name}.yaml", url, workers)
            times_path.write_text(json.dumps(times, indent=1))
    made_at = times.get("commit") or commit()
    sweep_ids = latest_sweeps(url)
    names = [n for n in EXPERIMENTS if n in sweep_ids]
    stamp = datetime.now(UTC).strftime("%Y-%m-%d")
    header = (
        f"Regenerated by `examples/rumelhart1986/regenerate.py` at commit {made_at} "
        f"({stamp}, `--workers {workers}`).\n\n"
    )
    text = header + tables(url, names, sweep_ids, times)
    click.echo(text)
    if readme:
        content = Path(readme).read_text()
        before, rest = content.split(START)
        _, after = rest.split(END)
        Path(readme).write_text(f"{before}{START}\n{text}{END}{after}")


if __name__ == "__main__":
    main()
