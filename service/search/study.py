"""Optuna's samplers, and the in-memory study rebuilt from what the database recorded.

Nothing of a sampler is stored. Each ask gets a fresh sampler seeded from (sampler_seed,
trial number), so what it proposes depends only on that seed and on the trials the study
holds at that moment, never on what a sampler object remembered: a driver that starts
again (after Ctrl-C, a crash, a takeover) and rebuilds the same trials asks the same
configurations as one that never stopped. Optuna's GPSampler caches its kernel fit between
asks and TPE draws from one generator; a fresh sampler has neither. (TPE and random
samplers are reused with their generators reseeded in place, which is the same thing at a
fraction of the cost: see ``reseed``.)

TPE and the Gaussian process read nothing but the trials, so the study is rebuilt with
``add_trial``. CMA-ES keeps its generations in the trials' system attributes, so for it the
asks and tells are replayed in their recorded order (``asked_after``, ``told_seq``), which
recreates them exactly; should a replayed ask differ from the recorded one (a result changed
since, e.g. by ``sweep retry``), the trials are added as for TPE and CMA-ES starts afresh
from them.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import optuna
from optuna.distributions import BaseDistribution
from optuna.samplers import BaseSampler
from optuna.trial import TrialState, create_trial

from service.search.objective import Outcome

optuna.logging.set_verbosity(optuna.logging.WARNING)
_STATES = {
    "complete": TrialState.COMPLETE,
    "fail": TrialState.FAIL,
    "pruned": TrialState.PRUNED,
    "running": TrialState.RUNNING,
}


def trial_seed(sampler_seed: int, number: int) -> int:
    """The seed of the sampler that asks trial ``number``: independent streams per trial."""
    return int(np.random.SeedSequence([sampler_seed, number]).generate_state(1)[0])


def make_sampler(method: str, seed: int) -> BaseSampler:
    """A fresh sampler for one ask. TPE with a constant liar, so that configurations asked
    while others still train are spread out (the running ones count as bad)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        if method == "tpe":
            return optuna.samplers.TPESampler(seed=seed, multivariate=True, constant_liar=True)
        if method == "gp":
            return optuna.samplers.GPSampler(seed=seed)
        if method == "cmaes":
            return optuna.samplers.CmaEsSampler(seed=seed, warn_independent_sampling=False)
        if method == "random":
            return optuna.samplers.RandomSampler(seed=seed)
    raise ValueError(f"no sampler for method {method!r}")


class _Unseeded(optuna.samplers.RandomSampler):
    """The study's sampler until the first ask: reseed() never reuses it."""


def reseed(sampler: BaseSampler, seed: int) -> bool:
    """Make ``sampler`` what a fresh one of its kind with ``seed`` would be; False when it
    cannot be (it keeps more state than its random generators, or is not one bplab made).

    TPE and random samplers keep nothing between asks but their generators, and building
    a TPESampler (two generators seeded from the OS, then reseeded) costs milliseconds per
    ask; reseeding the generators in place gives the same numbers (tests/search checks it
    against fresh samplers). The attributes are Optuna's own, as its reseed_rng() uses them.
    The one other thing a TPESampler caches, the intersection of the finished trials'
    distributions, is the spec's whole space in a search, cached or not.
    """
    if type(sampler) is optuna.samplers.TPESampler:
        sampler._rng.rng.seed(seed)
        sampler._random_sampler._rng.rng.seed(seed)
        return True
    if type(sampler) is optuna.samplers.RandomSampler:
        sampler._rng.rng.seed(seed)
        return True
    return False


class Search:
    """The study of one sweep: ask by trial number, tell by trial number."""

    def __init__(
        self, method: str, sampler_seed: int, space: Mapping[str, BaseDistribution], goal: str
    ) -> None:
        self.method = method
        self.sampler_seed = sampler_seed
        self.space = dict(space)
        # the first ask replaces it (add_trial, in a rebuild, samples nothing)
        self.study = optuna.create_study(direction=goal, sampler=_Unseeded())

    @property
    def n_trials(self) -> int:
        return len(self.study.get_trials(deepcopy=False))

    def ask(self, number: int) -> dict[str, Any]:
        """The params of trial ``number``, which must be the next one."""
        if number != self.n_trials:
            raise ValueError(f"asked trial {number}, but the study holds {self.n_trials}")
        seed = trial_seed(self.sampler_seed, number)
        if not reseed(self.study.sampler, seed):
            self.study.sampler = make_sampler(self.method, seed)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # independent sampling of categorical axes, etc.
            trial = self.study.ask(self.space)
        return dict(trial.params)

    def tell(self, number: int, result: Outcome) -> None:
        """Tell the sampler a finished trial: its value, or that it failed or was pruned."""
        if result.state == "complete":
            self.study.tell(number, result.value)
        elif result.state in ("fail", "pruned"):
            self.study.tell(number, state=_STATES[result.state])
        else:
            raise ValueError(f"trial {number} is still running")

    def add(self, params: Mapping[str, Any], result: Outcome | None) -> None:
        """Add a recorded trial as it stands (None: not told yet, so running)."""
        state = "running" if result is None else result.state
        value = result.value if result is not None and state == "complete" else None
        self.study.add_trial(
            create_trial(
                params=dict(params),
                distributions={k: self.space[k] for k in params},
                value=value,
                state=_STATES[state],
            )
        )


def rebuild(
    method: str,
    sampler_seed: int,
    space: Mapping[str, BaseDistribution],
    goal: str,
    trials: Sequence[Mapping[str, Any]],
    results: Mapping[int, Outcome],
) -> Search:
    """The study as the recorded ``trials`` (search_trials rows, in number order) leave it:
    the told ones with their ``results`` (by trial number), the others running."""
    if method == "cmaes":
        replayed = _replay(method, sampler_seed, space, goal, trials, results)
        if replayed is not None:
            return replayed
    search = Search(method, sampler_seed, space, goal)
    for t in trials:
        told = t["told_seq"] is not None and results[t["number"]].state != "running"
        search.add(t["params"], results[t["number"]] if told else None)
    return search


def _replay(
    method: str,
    sampler_seed: int,
    space: Mapping[str, BaseDistribution],
    goal: str,
    trials: Sequence[Mapping[str, Any]],
    results: Mapping[int, Outcome],
) -> Search | None:
    """Ask and tell again in the recorded order; None if an ask comes out differently."""
    search = Search(method, sampler_seed, space, goal)
    tells = sorted((t for t in trials if t["told_seq"] is not None), key=lambda t: t["told_seq"])
    if any(results[t["number"]].state == "running" for t in tells):
        return None  # a told trial is training again (retried): its old value is gone
    done = 0
    for t in trials:
        while done < len(tells) and tells[done]["told_seq"] <= t["asked_after"]:
            search.tell(tells[done]["number"], results[tells[done]["number"]])
            done += 1
        if not same_params(search.ask(t["number"]), t["params"]):
            return None
    for t in tells[done:]:
        search.tell(t["number"], results[t["number"]])
    return search


def same_params(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    """Equal params; floats exactly (JSON keeps a float's every bit), NaN never."""
    if a.keys() != b.keys():
        return False
    for key, x in a.items():
        y = b[key]
        if isinstance(x, float) and isinstance(y, float | int):
            if not (math.isfinite(x) and x == float(y)):
                return False
        elif x != y:
            return False
    return True
