"""Early stopping (issue 15): median stopping, asynchronous successive halving, Hyperband.

A population (service.execution.group) consults a ``Pruner`` after every epoch. Decisions
are made at fixed epochs, so that they do not depend on when a worker happens to look:

- asha: rungs at min_epochs * eta**k; a run (or configuration) goes on if its value is
  within the best 1/eta of the values recorded at that rung so far, its own included (as
  results arrive, never waiting: alone at a rung, it goes on).
- hyperband: brackets b = 0..B-1, bracket b has rungs at min_epochs * eta**(b + k); a
  configuration's bracket is its place in the sweep modulo B, and it is only compared with
  configurations of its own bracket.
- median: at every multiple of min_epochs, stop what is worse than the median of the
  others at that epoch (at least two others).

Before it decides, the population writes its rows through the decision epoch; the decision
then reads the database, the one truth every worker shares (service.db.pruning). With
``unit: config`` a configuration is scored by the mean (or median) of its seeds that reached
the epoch, and a decision to stop it is recorded in pruned_configs, which every population
reads when it flushes: all the seeds stop, wherever they train.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from service.db import pruning as db
from service.db import repository as repo
from service.db.repository import StaleAttempt
from service.db.retry import with_retry
from service.db.session import session_scope

MAXIMIZED = ("accuracy", "val_accuracy")
NEVER = np.iinfo(np.int64).max


@dataclass(frozen=True)
class Decision:
    """Why a run stops: the decision epoch, its (configuration's) value, the threshold."""

    epoch: int
    value: float | None
    threshold: float | None


def rungs(rule: dict[str, Any], bracket: int, epochs: int) -> list[int]:
    """The epochs (below ``epochs``, the run's last) at which a run of ``bracket`` is judged."""
    first = int(rule["min_epochs"])
    if rule["type"] == "median":
        return list(range(first, epochs, first))
    eta = int(rule["reduction_factor"])
    out, e = [], first * eta ** (bracket if rule["type"] == "hyperband" else 0)
    while e < epochs:
        out.append(e)
        e *= eta
    return out


def bracket_of(rule: dict[str, Any], order: int) -> int:
    return order % int(rule["brackets"]) if rule["type"] == "hyperband" else 0


def judge(rule: dict[str, Any], own: float, others: Sequence[float]) -> float | None:
    """The threshold ``own`` missed (so it stops), or None (it goes on). Values are as the
    metric is (accuracy: higher is better); NaN counts as the worst value."""
    sign = -1.0 if rule["metric"] in MAXIMIZED else 1.0
    mine = _lower_better(own, sign)
    rest = np.array([_lower_better(v, sign) for v in others], dtype=float)
    if rule["type"] == "median":
        if rest.size < 2:
            return None
        cut = float(np.median(rest))
    else:
        cut = float(np.quantile(np.append(rest, mine), 1.0 / int(rule["reduction_factor"])))
    return sign * cut if mine > cut else None


def _lower_better(value: float, sign: float) -> float:
    return math.inf if value is None or math.isnan(value) else sign * value


def score(rule: dict[str, Any], values: Sequence[float]) -> float:
    """A configuration's value over its seeds (unit: config)."""
    finite = [math.nan if v is None else float(v) for v in values]
    if any(math.isnan(v) for v in finite):
        return math.nan  # a seed that diverged makes its configuration the worst
    return float(np.median(finite) if rule.get("aggregate") == "median" else np.mean(finite))


def epoch_budget(rule: dict[str, Any] | None, epochs: Sequence[int]) -> tuple[int, int]:
    """(worst case, expected) epochs of runs with the given last epochs under ``rule``.

    Expected: asha keeps 1/eta at each rung; hyperband is asha from each bracket's first
    rung, the configurations spread evenly; median stops about half at the first check (the
    worse half of a field rarely overtakes the median later). An estimate for `sweep plan`.
    """
    worst = int(sum(epochs))
    if rule is None:
        return worst, worst
    brackets = int(rule.get("brackets", 1)) if rule["type"] == "hyperband" else 1
    expected = 0.0
    for e in epochs:
        for b in range(brackets):
            expected += _expected_run(rule, b, int(e)) / brackets
    return worst, int(round(expected))


def _expected_run(rule: dict[str, Any], bracket: int, epochs: int) -> float:
    marks = rungs(rule, bracket, epochs)
    if not marks:
        return float(epochs)
    if rule["type"] == "median":
        return marks[0] + 0.5 * (epochs - marks[0])
    eta = int(rule["reduction_factor"])
    total, alive = float(marks[0]), 1.0
    for here, nxt in zip(marks, [*marks[1:], epochs], strict=True):
        alive /= eta
        total += alive * (nxt - here)
    return total


@dataclass
class _Run:
    sweep_id: int
    key: str
    exempt: bool
    rule: dict[str, Any]
    marks: list[int]


class Pruner:
    """The rule of a population's runs, consulted after every epoch (see the module doc).

    Members are the population's live indices, as in its callbacks.
    """

    def __init__(self, runs: list[_Run | None], url: str | None, retry_s: float) -> None:
        self.runs = runs
        self.url = url
        self.retry_s = retry_s
        self.shared = any(r is not None and r.rule["unit"] == "config" for r in runs)
        self.next_at = np.array([_next(r, 0) for r in runs], dtype=np.int64)
        self.decided: dict[int, Decision] = {}

    @classmethod
    def load(
        cls, members: Sequence[Any], url: str | None, retry_s: float
    ) -> tuple[Pruner | None, dict[int, Decision]]:
        """The pruner of these members (None: no rule applies to any), and the decisions
        that already stand for some of them ({member index: decision}, unit: config): such a
        run finishes at once as pruned."""

        def read() -> tuple[list[_Run | None], dict[int, Decision]]:
            with session_scope(url, readonly=True) as session:
                info = db.run_rules(session, [m.run_id for m in members])
                orders: dict[int, dict[str, int]] = {}
                runs: list[_Run | None] = []
                for m in members:
                    sweep_id, key, exempt, rule = info.get(m.run_id, (0, "", True, None))
                    if rule is None or exempt:
                        runs.append(None)
                        continue
                    if rule["type"] == "hyperband" and sweep_id not in orders:
                        orders[sweep_id] = db.config_order(session, sweep_id)
                    bracket = bracket_of(rule, orders.get(sweep_id, {}).get(key, 0))
                    marks = rungs(rule, bracket, int(m.config["epochs"]))
                    runs.append(_Run(sweep_id, key, exempt, rule, marks))
                standing = _standing(session, runs)
            return runs, standing

        runs, standing = with_retry(read, seconds=retry_s, what="pruning: rules")
        if all(r is None for r in runs):
            return None, {}
        return cls(runs, url, retry_s), standing

    def check(
        self,
        members: np.ndarray,
        epochs: np.ndarray,
        flush: Callable[[], None],
        flushed: bool,
    ) -> dict[int, Decision]:
        """Members to stop now, {member index: decision}. ``flush`` writes the population's
        rows; ``flushed``: it has just done so (then decisions of other workers are read)."""
        due = np.flatnonzero(epochs >= self.next_at[members])
        if not due.size and not (flushed and self.shared):
            return {}
        if due.size:
            flush()
        at = {int(members[r]): int(epochs[r]) for r in due.tolist()}
        out = with_retry(lambda: self._decide(at), seconds=self.retry_s, what="pruning")
        for k, e in at.items():
            self.next_at[k] = _next(self.runs[k], e)
        live = {int(k) for k in members}
        fresh = {k: d for k, d in out.items() if k in live and k not in self.decided}
        self.decided.update(fresh)
        return fresh

    def _decide(self, at: dict[int, int]) -> dict[int, Decision]:
        out: dict[int, Decision] = {}
        with session_scope(self.url, readonly=not at) as session:
            cache: dict[tuple[int, int], list[tuple[int, str, float | None]]] = {}
            for k, epoch in sorted(at.items(), key=lambda item: item[0]):
                run = self.runs[k]
                if run is None or k in out or epoch not in run.marks:
                    continue
                if (run.sweep_id, epoch) not in cache:
                    cache[(run.sweep_id, epoch)] = db.values_at(
                        session, run.sweep_id, run.rule["metric"], epoch
                    )
                decision = self._judge(session, k, epoch, cache[(run.sweep_id, epoch)])
                if decision is None:
                    continue
                out[k] = decision
                if run.rule["unit"] == "config":  # its other seeds here stop with it
                    out.update({j: decision for j in self._same_config(k)})
            if self.shared:
                for j, d in _standing(session, self.runs).items():
                    out.setdefault(j, d)
        return out

    def _judge(
        self, session: Any, k: int, epoch: int, values: list[tuple[int, str, float | None]]
    ) -> Decision | None:
        run = self.runs[k]
        assert run is not None
        group = self._in_bracket(session, run, values)
        if run.rule["unit"] == "run":
            mine = [v for r, _key, v in group if r == self._run_id(k)]
            if not mine:
                return None
            others = [v for r, _key, v in group if r != self._run_id(k)]
            cut = judge(run.rule, mine[0], others)  # type: ignore[arg-type]
            return None if cut is None else Decision(epoch, mine[0], cut)
        seeds: dict[str, list[float | None]] = {}
        for _r, key, v in group:
            seeds.setdefault(key, []).append(v)
        if run.key not in seeds:
            return None
        scores = {key: score(run.rule, vs) for key, vs in seeds.items()}
        own = scores.pop(run.key)
        cut = judge(run.rule, own, list(scores.values()))
        if cut is None:
            return None
        e, v, t = db.record_pruned_config(session, run.sweep_id, run.key, epoch, own, cut)
        return Decision(e, v, t)

    def _in_bracket(
        self, session: Any, run: _Run, values: list[tuple[int, str, float | None]]
    ) -> list[tuple[int, str, float | None]]:
        if run.rule["type"] != "hyperband":
            return values
        order = db.config_order(session, run.sweep_id)
        mine = bracket_of(run.rule, order.get(run.key, 0))
        return [row for row in values if bracket_of(run.rule, order.get(row[1], 0)) == mine]

    def _same_config(self, k: int) -> list[int]:
        run = self.runs[k]
        return [
            j
            for j, other in enumerate(self.runs)
            if other is not None and (other.sweep_id, other.key) == (run.sweep_id, run.key)  # type: ignore[union-attr]
        ]

    def bind(self, keep: Sequence[int], run_ids: Sequence[int]) -> None:
        """Keep the members at indices ``keep`` (renumbered 0, 1, ...), whose run ids these are."""
        self.runs = [self.runs[k] for k in keep]
        self.next_at = self.next_at[list(keep)]
        self._ids = list(run_ids)

    def _run_id(self, k: int) -> int:
        return self._ids[k]


def _next(run: _Run | None, epoch: int) -> int:
    if run is None:
        return NEVER
    later = [e for e in run.marks if e > epoch]
    return later[0] if later else NEVER


def _standing(session: Any, runs: Sequence[_Run | None]) -> dict[int, Decision]:
    """Decisions recorded for the members' configurations (unit: config), by member index."""
    keys: dict[int, set[str]] = {}
    for r in runs:
        if r is not None and r.rule["unit"] == "config":
            keys.setdefault(r.sweep_id, set()).add(r.key)
    found = {s: db.pruned_configs(session, s, ks) for s, ks in keys.items()}
    out = {}
    for k, r in enumerate(runs):
        if r is not None and r.key in found.get(r.sweep_id, {}):
            out[k] = Decision(*found[r.sweep_id][r.key])
    return out


def finish_unstarted(job: Any, epoch: int, decision: Decision) -> str | None:
    """End a claimed run of a configuration already pruned, without training it (its
    attempt's fenced write through ``job``, a RunJob); its final status, None if not ours."""
    summary = {"status": "pruned", "epochs_run": epoch, **summary_fields(decision)}

    def body(session: Any) -> None:
        if not repo.finish_runs(session, [(job.run_id, job.attempt, summary)]):
            raise StaleAttempt(job.run_id, job.attempt)

    try:
        job.transaction(body, "pruned")
    except StaleAttempt:
        return job.after_stale()
    return "pruned"


def summary_fields(decision: Decision | None) -> dict[str, Any]:
    """The run columns a final write sets: a pruned run's decision, None for any other."""
    if decision is None:
        return {"pruned_epoch": None, "pruned_value": None, "pruned_threshold": None}
    return {
        "status": "pruned",
        "pruned_epoch": decision.epoch,
        "pruned_value": decision.value,
        "pruned_threshold": decision.threshold,
    }


def budget_line(spec: Any) -> str | None:
    """`sweep plan`'s line on the epochs an early_terminate rule may save (None: no rule)."""
    rule = spec.spec_dict.get("early_terminate")
    if rule is None:
        return None
    epochs = [int(c["epochs"]) for c in spec.configs()] * len(spec.seeds)
    worst, expected = epoch_budget(rule, epochs)
    share = expected / worst if worst else 1.0
    return (
        f"early_terminate {rule['type']} on {rule['metric']} (unit: {rule['unit']}): "
        f"{worst:,} epochs at worst, about {expected:,} expected ({share:.0%})"
    )


def show_fields(session: Any, sweep_id: int, spec: dict[str, Any]) -> dict[str, Any]:
    """`sweep show`'s fields on early stopping: the early_terminate rule and what it pruned,
    the runs patience stopped, the epochs trained of the full budget ({} when neither)."""
    rule = (spec or {}).get("early_terminate")
    got = db.pruned_summary(session, sweep_id)
    if rule is None and not got["stopped_runs"]:
        return {}
    full = got["epochs_full"]
    share = f" ({got['epochs_trained'] / full:.0%})" if full else ""
    out: dict[str, Any] = {}
    if rule is not None:
        out["early_terminate"] = ", ".join(f"{k}={v}" for k, v in rule.items())
        out["configs_pruned"] = got["pruned_configs"]
    if got["stopped_runs"]:
        out["runs_stopped_by_patience"] = got["stopped_runs"]
    out["epochs_trained"] = f"{got['epochs_trained']:,} of {full:,}{share}"
    return out


__all__ = [
    "budget_line",
    "show_fields",
    "Decision",
    "Pruner",
    "epoch_budget",
    "finish_unstarted",
    "judge",
    "rungs",
    "score",
    "summary_fields",
]
