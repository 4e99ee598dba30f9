"""The search driver: ask the sampler, record the configuration and its runs, train, tell.

One driver per sweep at a time, through the sweep's row in search_leases: every write it
makes renews the lease on its token, so a driver that was taken over (stalled past
``lease_s``) records nothing more and stops (LeaseLost). A driver that starts rebuilds the
study from the recorded trials and the runs' results (service.search.study), sends the runs
of recorded trials that are still queued to train (a second publish is harmless: a run is
claimed once), and goes on where the last one stopped.

Keeping every slot busy: it asks for as many configurations as there are free slots; the
sampler sees the ones still training as running trials. Trials finished in one look at the
database are told in trial-number order, so that with one slot the sequence of asks and
tells, and so of configurations, is the same whether or not the search was interrupted.

A configuration the sampler proposes again is recorded as a trial of its own that shares
the first one's runs (nothing trains twice) and is told the same result; it counts toward
run_cap, as it would in Optuna's study.optimize.
"""

from __future__ import annotations

import os
import socket
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from sqlalchemy.exc import IntegrityError

from service.db import repository as repo
from service.db import search as db
from service.db.session import session_scope
from service.search.objective import Outcome, outcome
from service.search.space import search_space, to_config
from service.search.study import Search, rebuild
from service.spec import SweepSpec, parse_spec

# A driver renews its lease at every look at the database (several times a second); one
# silent for this long is taken to be dead, and another driver may take over.
LEASE_SECONDS = 30.0


class Backend(Protocol):
    slots: int

    def submit(self, run_ids: list[int]) -> None: ...
    def wait(self, timeout: float) -> None: ...
    def close(self, *, interrupted: bool) -> None: ...


@dataclass
class DriveReport:
    """What a driver did: trials asked and told by it, and how it ended."""

    sweep_id: int
    asked: int = 0
    told: int = 0
    finished: bool = False
    interrupted: bool = False
    lost_lease: bool = False
    held_by: str | None = None  # another driver held the lease and we did not wait
    trials: int = 0  # recorded in all, by any driver


@dataclass
class _Trial:
    number: int
    config_key: str
    params: dict[str, Any]
    first_number: int | None
    told: bool


def default_holder() -> str:
    """Names this driver in the lease row: host, process and a random part."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"[:200]


def load_adaptive_spec(sweep: Any) -> SweepSpec:
    """The validated spec of a recorded adaptive sweep (its stored spec parsed again)."""
    spec = parse_spec(dict(sweep.spec), source=f"sweep {sweep.id}")
    if not spec.adaptive:
        raise ValueError(f"sweep {sweep.id} is a {spec.method} sweep, not a search")
    return spec


@dataclass
class Driver:
    sweep_id: int
    backend: Backend
    url: str | None = None
    holder: str = field(default_factory=default_holder)
    lease_s: float = LEASE_SECONDS
    poll_s: float = 0.25
    wait_for_lease: bool = True
    # Called at every look at the database (a progress bar reads the counts then).
    on_tick: Callable[[], None] | None = None
    # Tests: stop as Ctrl-C would once this returns True (given the tells so far).
    stop_when: Callable[[int], bool] | None = None
    # `sweep submit`: record and publish the first configurations, then leave the rest to
    # `sweep watch` or `sweep drive`.
    first_batch_only: bool = False

    def run(self) -> DriveReport:
        """Drive the search to run_cap (or until Ctrl-C, or until taken over)."""
        report = DriveReport(self.sweep_id)
        self._load()
        self.token = self._acquire(report)
        if self.token is None:
            self.backend.close(interrupted=False)
            return report
        try:
            self._start()
            self._loop(report)
        except KeyboardInterrupt:
            report.interrupted = True
        except db.LeaseLost:
            report.lost_lease = True
        finally:
            self.backend.close(interrupted=report.interrupted or report.lost_lease)
            if not report.lost_lease:
                with session_scope(self.url) as s:
                    db.release_lease(s, self.sweep_id, self.token)
        report.trials = len(self.trials)
        return report

    # --- start -----------------------------------------------------------------------

    def _load(self) -> None:
        with session_scope(self.url, readonly=True) as s:
            sweep = repo.get_sweep(s, self.sweep_id)
            if sweep is None:
                raise ValueError(f"sweep {self.sweep_id} does not exist")
            self.spec = load_adaptive_spec(sweep)
        self.metric: dict[str, str] = self.spec.spec_dict["metric"]
        self.run_cap: int = int(self.spec.run_cap or 0)
        self.space = search_space(self.spec)

    def _acquire(self, report: DriveReport) -> int | None:
        while True:
            with session_scope(self.url) as s:
                token = db.acquire_lease(s, self.sweep_id, self.holder, self.lease_s)
                info = None if token else db.lease_info(s, self.sweep_id, self.lease_s)
                recorded = db.list_trials(s, self.sweep_id) if not token else []
            if token is not None:
                return token
            report.held_by = info["holder"] if info else None
            untold = [t for t in recorded if t["told_seq"] is None]
            if len(recorded) >= self.run_cap and not untold:
                report.finished = True  # another driver finished the search meanwhile
                return None
            if not self.wait_for_lease:
                return None
            if self.on_tick is not None:
                self.on_tick()
            time.sleep(self.poll_s)

    def _start(self) -> None:
        """Rebuild the study and send the recorded trials' queued runs to train."""
        with session_scope(self.url, readonly=True) as s:
            rows = db.list_trials(s, self.sweep_id)
            runs = db.config_runs(s, self.sweep_id, val_accuracy=self._needs_val_accuracy)
        results = {r["number"]: outcome(runs.get(r["config_key"], []), self.metric) for r in rows}
        self.search: Search = rebuild(
            self.spec.method,
            int(self.spec.spec_dict.get("sampler_seed", 0)),
            self.space,
            self.metric["goal"],
            rows,
            results,
        )
        self.trials = [
            _Trial(
                r["number"],
                r["config_key"],
                r["params"],
                r["first_number"],
                r["told_seq"] is not None and results[r["number"]].state != "running",
            )
            for r in rows
        ]
        self.told_count = max((r["told_seq"] or 0 for r in rows), default=0)
        with session_scope(self.url, readonly=True) as s:
            for t in self.trials:
                if not t.told and t.first_number is None:
                    queued = db.queued_run_ids(s, self.sweep_id, t.config_key)
                    if queued:
                        self.backend.submit(queued)

    @property
    def _needs_val_accuracy(self) -> bool:
        return self.metric["name"] == "val_accuracy"

    # --- the loop --------------------------------------------------------------------

    def _loop(self, report: DriveReport) -> None:
        while True:
            with session_scope(self.url) as s:
                db.renew_lease(s, self.sweep_id, self.token)
            self._tell_finished(report)
            if self.stop_when is not None and self.stop_when(self.told_count):
                raise KeyboardInterrupt
            if len(self.trials) >= self.run_cap and all(t.told for t in self.trials):
                report.finished = True
                return
            self._ask_free(report)
            if self.first_batch_only:
                return
            if self.on_tick is not None:
                self.on_tick()
            if all(t.told for t in self.trials) and len(self.trials) < self.run_cap:
                continue  # only repeats were asked and told: ask again at once
            self.backend.wait(self.poll_s)

    def _pending_configs(self) -> set[str]:
        return {t.config_key for t in self.trials if not t.told}

    def _tell_finished(self, report: DriveReport) -> None:
        pending = self._pending_configs()
        if not pending:
            return
        with session_scope(self.url, readonly=True) as s:
            counts = db.status_by_config(s, self.sweep_id)
        finished = {
            key
            for key in pending
            if not any(counts.get(key, {}).get(st, 0) for st in ("queued", "running"))
        }
        if not finished:
            return
        with session_scope(self.url, readonly=True) as s:
            runs = db.config_runs(s, self.sweep_id, val_accuracy=self._needs_val_accuracy)
        results = {key: outcome(runs.get(key, []), self.metric) for key in finished}
        report.told += self._tell(
            [t for t in self.trials if not t.told and t.config_key in finished], results
        )

    def _tell(self, trials: list[_Trial], results: dict[str, Outcome]) -> int:
        """Tell the sampler, in trial-number order, and record the order (fenced)."""
        told = []
        for t in sorted(trials, key=lambda t: t.number):
            result = results[t.config_key]
            if result.state == "running":
                continue
            self.search.tell(t.number, result)
            self.told_count += 1
            told.append((t, self.told_count))
        if not told:
            return 0
        with session_scope(self.url) as s:
            for t, seq in told:
                db.mark_told(s, sweep_id=self.sweep_id, token=self.token, number=t.number, seq=seq)
        for t, _ in told:
            t.told = True
        return len(told)

    def _ask_free(self, report: DriveReport) -> None:
        free = self.backend.slots - len(self._pending_configs())
        while free > 0 and len(self.trials) < self.run_cap:
            number = len(self.trials)
            params = self.search.ask(number)
            config = to_config(self.spec, params)
            try:
                with session_scope(self.url) as s:
                    first, run_ids = db.record_trial(
                        s,
                        sweep_id=self.sweep_id,
                        token=self.token,
                        number=number,
                        params=params,
                        config=config,
                        seeds=self.spec.seeds,
                        asked_after=self.told_count,
                    )
            except IntegrityError:
                # another driver recorded this trial (or these runs): we were taken over
                raise db.LeaseLost(self.sweep_id, self.token) from None
            report.asked += 1
            trial = _Trial(number, repo.config_key(config), params, first, False)
            self.trials.append(trial)
            if first is None:
                self.backend.submit(run_ids)
                free -= 1
            elif self.trials[first].told:
                report.told += self._tell_repeat(trial)

    def _tell_repeat(self, trial: _Trial) -> int:
        with session_scope(self.url, readonly=True) as s:
            runs = db.config_runs(s, self.sweep_id, val_accuracy=self._needs_val_accuracy)
        return self._tell([trial], {trial.config_key: outcome(runs[trial.config_key], self.metric)})
