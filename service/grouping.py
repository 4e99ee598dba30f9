"""Which runs train together: grouping a sweep's runs into population tasks (issue 8).

``shape_key`` is the one place that decides which runs may share a population: everything
in a configuration except what ``engine.train_population`` lets members differ in.
``group_run_ids`` cuts a sweep's runs into groups of one shape (equal-sized, as many as
keep every process busy), ``service.dispatch`` sends them to Celery as tasks;
``service.execution.execute_runs`` trains a group.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy.orm import Session

from service.config import BY_FIELD, get_settings
from service.db.queries import run_configs
from service.shared_weights import shares_weights

DEFAULT_POPULATION_SIZE = BY_FIELD["population_size"].default
# A sweep submitted to Celery is cut into at least this many tasks per shape (when it has
# that many runs): the number of workers is unknown at submission, and a sweep smaller than
# one population should still spread over a few of them.
SUBMIT_MIN_TASKS = 8
# What one more population costs, in member-epochs: an epoch of a population of m networks
# costs about as much as (GROUP_OVERHEAD + m) networks would apart (the per-epoch Python,
# NumPy call and recording overhead is paid per population). Measured on XOR 2-2-1: 8
# members 125 us/epoch, 64 members 210 us/epoch, so about 75; larger networks make it
# relatively smaller. The local pool weighs this cost against idle processes when it decides
# how many groups to cut a sweep into (balanced_groups).
GROUP_OVERHEAD = 64

# What members of one population may differ in (engine.train_population): their initial
# weights (init and seed), optimizer settings, schedule, epochs, stopping and logging.
# Every other key, present or future, must be equal: unknown keys count as shape.
MEMBER_KEYS = frozenset(
    {
        "learning_rate",
        "momentum",
        "weight_decay",
        "decay",
        "decay_biases",
        "error_margin",
        "schedule",
        "epochs",
        "init",
        "stop_loss",
        "stop_within",
        "stop_on_solve",
        "log_every",
        "patience",
        "min_delta",
        "restore_best",
    }
)


def population_size() -> int:
    """Runs per population task (BPLAB_POPULATION_SIZE, default 64; 1 turns populations off)."""
    return get_settings().population_size


def shape_key(config: Mapping[str, Any], seed: int) -> str:
    """Runs with equal keys can train in one population: same data, same network shape,
    optimizer and batch schedule. A validation split is drawn from the run's seed, so with
    one the seed is part of the shape (the members must see the same training rows)."""
    if shares_weights(config):
        # engine.stacked has no tied or recurrent layer: such a run trains alone, so its key
        # is the whole run, configuration and seed (unique within a sweep)
        return json.dumps({**config, "__seed": int(seed)}, sort_keys=True, default=str)
    shape = {k: v for k, v in config.items() if k not in MEMBER_KEYS}
    if float(config.get("validation_split") or 0.0) > 0:
        shape["__seed"] = int(seed)
    return json.dumps(shape, sort_keys=True, default=str)


def group_runs(
    runs: Iterable[tuple[int, Mapping[str, Any], int]],
    size: int,
    min_groups: int = 1,
    workers: int | None = None,
) -> list[list[int]]:
    """(run_id, config, seed) -> lists of run ids of one shape.

    A group holds at most ``size`` runs. Each shape is cut into groups of equal size (they
    differ by one at most; a population lasts as long as its slowest member, so a short
    group left over at the end would only leave a process idle), at least ``min_groups`` of
    them when it has that many runs, so that a small sweep still spreads over several
    workers. With ``workers`` (the local pool, whose processes are known) the number of
    groups is chosen so that the processes finish together (see ``balanced_groups``) and
    the groups come longest first, the order a pool should start them in.
    """
    shapes: dict[str, list[tuple[int, int]]] = {}
    for run_id, config, seed in runs:
        epochs = int(config.get("epochs", 1) or 1)
        shapes.setdefault(shape_key(config, seed), []).append((int(run_id), epochs))
    members = list(shapes.values())
    cuts = [max(math.ceil(len(m) / size), min(max(1, min_groups), len(m))) for m in members]
    if workers is not None and workers > 1:
        cuts = balanced_groups(members, cuts, workers)
    groups = [g for m, k in zip(members, cuts, strict=True) for g in _split(m, k)]
    if workers is not None:
        groups.sort(key=_group_cost, reverse=True)  # stable: equal costs keep their order
    return [[run_id for run_id, _ in g] for g in groups]


def _split(items: list[tuple[int, int]], k: int) -> list[list[tuple[int, int]]]:
    """``items`` in order, cut into ``k`` runs of consecutive items whose sizes differ by
    one at most (the larger ones first)."""
    q, r = divmod(len(items), k)
    out, at = [], 0
    for i in range(k):
        n = q + (1 if i < r else 0)
        out.append(items[at : at + n])
        at += n
    return out


def _group_cost(group: list[tuple[int, int]]) -> int:
    """Estimated work of a population: its longest member's epochs, each costing the
    per-population overhead plus one unit per member (stop_on_solve may end it sooner; that
    cannot be known beforehand)."""
    return max(e for _, e in group) * (GROUP_OVERHEAD + len(group))


def _makespan(groups: list[list[tuple[int, int]]], workers: int) -> int:
    """When the last of ``workers`` processes ends, taking groups longest first, each to the
    process that becomes free first (what a process pool does with that submission order)."""
    ends = [0] * workers
    for cost in sorted(map(_group_cost, groups), reverse=True):
        i = ends.index(min(ends))
        ends[i] += cost
    return max(ends)


def balanced_groups(
    members: list[list[tuple[int, int]]], cuts: list[int], workers: int
) -> list[int]:
    """How many groups to cut each shape into for ``workers`` processes, starting from the
    fewest allowed (``cuts``): more groups while that ends the whole sweep sooner.

    Each step tries cutting one shape into 1 .. ``workers`` more groups (going from 3 groups
    to 4 on 2 processes helps where 3 to 4 alone would not be tried otherwise) and keeps the
    best; each extra group costs GROUP_OVERHEAD member-epochs per epoch, so the search stops
    where the time saved on idle processes no longer pays for it. Only the few most costly
    shapes are tried: the rest are short enough to fill gaps.
    """
    cuts = list(cuts)

    def span(c: list[int]) -> int:
        return _makespan(
            [g for m, k in zip(members, c, strict=True) for g in _split(m, k)], workers
        )

    best = span(cuts)
    while True:
        order = sorted(
            range(len(members)),
            key=lambda s: _group_cost(_split(members[s], cuts[s])[0]),
            reverse=True,
        )
        trial_best, trial = best, None
        for s in order[: 2 * workers]:
            for extra in range(1, workers + 1):
                k = cuts[s] + extra
                if k > len(members[s]):
                    break
                c = cuts[:s] + [k] + cuts[s + 1 :]
                t = span(c)
                if t < trial_best:
                    trial_best, trial = t, c
        if trial is None:
            return cuts
        best, cuts = trial_best, trial


def group_run_ids(
    session: Session,
    run_ids: Sequence[int],
    size: int | None = None,
    min_groups: int = 1,
    workers: int | None = None,
) -> list[list[int]]:
    """Group stored runs by shape (one query); ``size`` defaults to population_size().
    ``min_groups`` and ``workers`` as in ``group_runs``."""
    size = population_size() if size is None else size
    if size == 1:
        return [[int(r)] for r in run_ids]
    rows = run_configs(session, run_ids)
    ids = [int(r) for r in run_ids]
    return group_runs(((r, *rows[r]) for r in ids if r in rows), size, min_groups, workers)


__all__ = [
    "DEFAULT_POPULATION_SIZE",
    "MEMBER_KEYS",
    "SUBMIT_MIN_TASKS",
    "balanced_groups",
    "group_run_ids",
    "group_runs",
    "population_size",
    "shape_key",
]
