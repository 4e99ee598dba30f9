"""Managing recorded sweeps (issue 19): extend, provenance of data files, tags.

Extending a sweep adds (configuration, seed) cells: the sweep's configurations times its
seeds, plus what ``--seeds`` and ``--spec`` bring, minus the cells it already has. So the
sweep stays a full table of configurations x seeds (what `results` and `compare` pair on),
and extending twice with the same arguments adds nothing the second time.

A csv:/npz: dataset is recorded with the sha256 of its bytes. A run reads its file when it
trains, so more runs (extend, resume, retry) on a file that changed since would mix two
datasets in one sweep without a trace; they are refused instead.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from service.db import management as mgmt
from service.db import repository as repo
from service.spec import SweepSpec
from service.spec.checks import seed_check
from service.spec.errors import Invalid
from service.spec.parameters import PARAMETERS
from service.spec.sweep import Axis

FILE_KINDS = ("csv", "npz")
MAX_SEED_COUNT = 100_000  # as --max-runs: a count is expanded into a list of seeds
_DIGESTS: dict[tuple[str, int, int], str] = {}


class ManageError(ValueError):
    """A management request that cannot be done as asked: one line for the user."""


# --- provenance ------------------------------------------------------------------------


def data_file(dataset: str) -> Path | None:
    """The file behind a csv:/npz: dataset name (None for a generated dataset)."""
    from service.targets import split_targets

    kind, _, arg = split_targets(dataset)[0].partition(":")
    return Path(arg) if kind in FILE_KINDS and arg else None


def file_digest(path: Path) -> str:
    """sha256 of the file's bytes, read in blocks (cached per path, mtime and size)."""
    stat = path.stat()
    key = (str(path), stat.st_mtime_ns, stat.st_size)
    digest = _DIGESTS.get(key)
    if digest is None:
        h = hashlib.sha256()
        with path.open("rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
        digest = _DIGESTS[key] = h.hexdigest()
    return digest


def dataset_digest(dataset: str) -> str | None:
    path = data_file(dataset)
    return None if path is None else file_digest(path)


def record_provenance(session: Session, sweep_id: int, dataset: str) -> None:
    """Store the content hash of the sweep's data file (nothing for generated data)."""
    digest = dataset_digest(dataset)
    if digest is not None:
        mgmt.set_data_hash(session, sweep_id, digest)


def provenance_problem(dataset: str, recorded: str | None) -> str | None:
    """Why more runs on this data file would not train on what the sweep recorded, or None."""
    path = data_file(dataset)
    if path is None or recorded is None:
        return None  # generated data, or a sweep recorded before hashes were
    try:
        current = file_digest(path)
    except FileNotFoundError:
        return f"its data file {path} is gone"
    except OSError as exc:
        return f"its data file {path} cannot be read ({exc.strerror or exc})"
    if current != recorded:
        return (
            f"its data file {path} has changed since the sweep was recorded "
            f"(sha256 {recorded[:12]}..., now {current[:12]}...); "
            "restore the file or start a new sweep"
        )
    return None


def check_provenance(session: Session, sweep_id: int, action: str) -> None:
    """ManageError when the sweep's data file changed since it was recorded."""
    sweep = repo.get_sweep(session, sweep_id)
    if sweep is None:
        return
    problem = provenance_problem(sweep.dataset, sweep.data_sha256)
    if problem:
        raise ManageError(f"cannot {action} sweep {sweep_id}: {problem}")


# --- extend ------------------------------------------------------------------------------


def parse_seeds(text: str) -> list[int]:
    """--seeds: "N" (seeds 0..N-1, as in a spec) or a comma list "5,6,7"."""
    parts = [p.strip() for p in text.split(",")]
    try:
        numbers = [int(p) for p in parts]
    except ValueError:
        raise ManageError(
            f"--seeds: {text!r} is not a count N or a list of seeds such as 5,6,7"
        ) from None
    if len(numbers) == 1:
        if not 1 <= numbers[0] <= MAX_SEED_COUNT:
            raise ManageError(
                f"--seeds: a count must be in [1, {MAX_SEED_COUNT:,}], got {numbers[0]} "
                "(or give a list such as 5,6,7)"
            )
        return list(range(numbers[0]))
    try:
        seeds = [seed_check(n, "--seeds") for n in numbers]
    except Invalid as exc:
        raise ManageError(f"--seeds: {exc.message}") from None
    if len(set(seeds)) != len(seeds):
        raise ManageError(f"--seeds: {text!r} names a seed twice")
    return seeds


@dataclass(frozen=True)
class Extension:
    """What extending adds: the new cells, and the sweep's spec and swept list after it."""

    runs: list[dict[str, Any]]
    spec: dict[str, Any]
    swept: list[str]
    seeds_added: list[int]
    configs_added: int


def plan_extension(
    session: Session,
    sweep_id: int,
    *,
    seeds: list[int] | None = None,
    more: SweepSpec | None = None,
    more_seeds: bool = False,
) -> Extension:
    """The cells extending the sweep adds. ``more``: a spec whose configurations join;
    ``more_seeds``: its seeds join too (it named them)."""
    sweep = repo.get_sweep(session, sweep_id)
    if sweep is None:
        raise ManageError(f"sweep {sweep_id} does not exist (see `bplab sweep list`)")
    if sweep.method not in ("grid", "random"):
        raise ManageError(
            f"sweep {sweep_id} is a {sweep.method} search, which picks its own configurations; "
            "only grid and random sweeps can be extended"
        )
    if more is not None and more.dataset != sweep.dataset:
        raise ManageError(
            f"--spec: its dataset {more.dataset} is not sweep {sweep_id}'s ({sweep.dataset}); "
            "a sweep has one dataset"
        )
    if more is not None and more.adaptive:
        raise ManageError(f"--spec: a {more.method} search cannot extend a sweep")
    cells = mgmt.sweep_cells(session, sweep_id)
    have = {(key, seed) for key, _config, seed in cells}
    configs: dict[str, dict[str, Any]] = {}
    all_seeds: dict[int, None] = {}
    for key, config, seed in cells:
        configs.setdefault(key, config)
        all_seeds.setdefault(seed, None)
    old_seeds = list(all_seeds)
    for seed in [*(seeds or []), *(more.seeds if more is not None and more_seeds else [])]:
        all_seeds.setdefault(seed, None)
    configs_before = len(configs)
    for config in more.configs() if more is not None else []:
        configs.setdefault(repo.config_key(config), config)
    runs = [
        {"config": config, "seed": seed}
        for key, config in configs.items()
        for seed in all_seeds
        if (key, seed) not in have
    ]
    spec = dict(sweep.spec)
    spec["seeds"] = list(all_seeds)
    swept = list(sweep.swept)
    if more is not None:
        spec["parameters"], swept = _parameters(list(configs.values()))
    return Extension(
        runs=runs,
        spec=spec,
        swept=swept,
        seeds_added=[s for s in all_seeds if s not in old_seeds],
        configs_added=len(configs) - configs_before,
    )


def _parameters(configs: list[dict[str, Any]]) -> tuple[dict[str, Any], list[str]]:
    """The spec's parameters listing every value the sweep's configurations hold, and the
    parameters that vary (a grid extended by other values is no longer one product, so the
    stored spec lists the values; the runs are the truth)."""
    parameters: dict[str, Any] = {}
    swept: list[str] = []
    for name in PARAMETERS:
        values: dict[str, Any] = {}
        for config in configs:
            values.setdefault(repo.canonical_json({"v": config.get(name)}), config.get(name))
        axis = Axis(name, tuple(values.values()))
        parameters[name] = axis.spec_form()
        if len(values) > 1:
            swept.append(name)
    return parameters, swept


def extend_sweep(
    session: Session,
    sweep_id: int,
    *,
    seeds: list[int] | None = None,
    more: SweepSpec | None = None,
    more_seeds: bool = False,
) -> list[int]:
    """Record the missing cells as queued runs, under the sweep's lock; their ids.

    Planned again under the lock, so that of two extends running at once the second finds
    the first's runs and adds none of them again.
    """
    sweep = mgmt.lock_sweep(session, sweep_id)
    if sweep is None:
        raise ManageError(f"sweep {sweep_id} does not exist (see `bplab sweep list`)")
    plan = plan_extension(session, sweep_id, seeds=seeds, more=more, more_seeds=more_seeds)
    if not plan.runs:
        return []
    return mgmt.add_runs(session, sweep, plan.runs, spec=plan.spec, swept=plan.swept)


# --- listing --------------------------------------------------------------------------


def sweep_rows(
    session: Session,
    *,
    name: str | None = None,
    dataset: str | None = None,
    tags: Sequence[tuple[str, str | None]] = (),
) -> list[dict[str, Any]]:
    """`sweep list`'s rows (repo.list_sweeps) matching the filters, each with its tags and
    note: what the CLI prints and the Python API returns."""
    keep = set(mgmt.matching_sweep_ids(session, name=name, dataset=dataset, tags=tags))
    rows = [r for r in repo.list_sweeps(session) if r["id"] in keep]
    ids = [r["id"] for r in rows]
    labels = mgmt.tags_of(session, ids) if ids else {}
    notes = mgmt.notes_of(session, ids) if ids else {}
    return [{**r, "tags": labels.get(r["id"], {}), "note": notes.get(r["id"])} for r in rows]


# --- tags --------------------------------------------------------------------------------

MAX_TAG_KEY = 100
MAX_TAG_VALUE = 500


def parse_tag(text: str, *, value_required: bool = True) -> tuple[str, str | None]:
    """ "key=value" (or "key" when a value is optional) as a pair; ManageError if malformed."""
    key, eq, value = text.partition("=")
    key = key.strip()
    if not key or (value_required and not eq):
        example = "key=value" if value_required else "key or key=value"
        raise ManageError(f"tag {text!r} is not {example} (e.g. owner=ana)")
    if len(key) > MAX_TAG_KEY or len(value) > MAX_TAG_VALUE:
        raise ManageError(
            f"tag {text!r}: keys are at most {MAX_TAG_KEY} characters, values {MAX_TAG_VALUE}"
        )
    return key, (value.strip() if eq else None)


__all__ = [
    "Extension",
    "ManageError",
    "check_provenance",
    "data_file",
    "dataset_digest",
    "extend_sweep",
    "file_digest",
    "parse_seeds",
    "parse_tag",
    "plan_extension",
    "provenance_problem",
    "record_provenance",
    "sweep_rows",
]
