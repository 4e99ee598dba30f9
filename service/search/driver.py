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
from service.db.session import connection_scope, session_scope
from service.search.objective import PENDING, Outcome, outcome
from service.search.space import search_space, to_config
from service.search.study import Search, rebuild
from service.spec import SweepSpec, parse_spec

# A driver renews its lease with every write, and at least every RENEW_FRACTION of the lease
# when it has nothing to write; one silent for LEASE_SECONDS is taken to be dead, and another
# driver may take over.
LEASE_SECONDS = 30.0
RENEW_FRACTION = 0.2


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
        token = self._acquire(report)
        if token is None:
            self.backend.close(interrupted=False)
            return report
        self.token: int = token
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
        # in memory from here on: what the loop would otherwise read again at every look
        self.firsts = {t.config_key: t.number for t in self.trials if t.first_number is None}
        self.results = {t.config_key: results[t.number] for t in self.trials if t.told}
        self.pending: dict[str, list[_Trial]] = {}
        for t in self.trials:
            if not t.told:
                self.pending.setdefault(t.config_key, []).append(t)
        self.unwritten_tells: list[tuple[int, int]] = []
        self.unwritten_asks: list[db.NewTrial] = []
        self.renewed_at = time.monotonic()
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
    # Each look at the database is one read (the runs of the configurations still training)
    # and at most one write transaction, fenced once on the lease: the tells since the last
    # look and the trials asked, with their runs. Runs are sent to train only once committed.

    def _loop(self, report: DriveReport) -> None:
        while True:
            self._tell_finished(report)
            if self.stop_when is not None and self.stop_when(self.told_count):
                self._write()
                raise KeyboardInterrupt
            if len(self.trials) >= self.run_cap and not self.pending:
                self._write()
                report.finished = True
                return
            self._ask_free(report)
            for run_ids in self._write():
                self.backend.submit(run_ids)
            if self.first_batch_only:
                return
            if self.on_tick is not None:
                self.on_tick()
            if not self.pending and len(self.trials) < self.run_cap:
                continue  # only repeats were asked and told: ask again at once
            self.backend.wait(self.poll_s)

    def _tell_finished(self, report: DriveReport) -> None:
        """Read the runs of the configurations still training; tell those that finished."""
        if not self.pending:
            return
        with connection_scope(self.url, readonly=True) as conn:
            runs = db.config_runs(
                conn, self.sweep_id, val_accuracy=self._needs_val_accuracy, keys=list(self.pending)
            )
        results = {
            key: outcome(members, self.metric)
            for key, members in runs.items()
            if not any(r["status"] in PENDING for r in members)
        }
        report.told += self._tell([t for key in results for t in self.pending[key]], results)

    def _tell(self, trials: list[_Trial], results: dict[str, Outcome]) -> int:
        """Tell the sampler, in trial-number order; the order is written at the next look."""
        told = 0
        for t in sorted(trials, key=lambda t: t.number):
            result = results[t.config_key]
            if result.state == "running":
                continue
            self.search.tell(t.number, result)
            self.told_count += 1
            self.unwritten_tells.append((t.number, self.told_count))
            self.results[t.config_key] = result
            t.told = True
            waiting = self.pending.get(t.config_key, [])
            if t in waiting:
                waiting.remove(t)
                if not waiting:
                    del self.pending[t.config_key]
            told += 1
        return told

    def _ask_free(self, report: DriveReport) -> None:
        """Ask for a configuration per free slot (a repeat of a told one takes no slot)."""
        free = self.backend.slots - len(self.pending)
        while free > 0 and len(self.trials) < self.run_cap:
            number = len(self.trials)
            params = self.search.ask(number)
            config = to_config(self.spec, params)
            key = repo.config_key(config)
            first = self.firsts.get(key)
            trial = _Trial(number, key, params, first, False)
            self.trials.append(trial)
            self.unwritten_asks.append(
                db.NewTrial(number, params, config, first, asked_after=self.told_count)
            )
            report.asked += 1
            if first is None:
                self.firsts[key] = number
                self.pending[key] = [trial]
                free -= 1
            elif key in self.results:  # the first trial's result is known: tell it now
                report.told += self._tell([trial], self.results)
            else:  # told with the first, when its runs finish
                self.pending[key].append(trial)

    def _write(self) -> list[list[int]]:
        """Record the unwritten tells and asks in one fenced transaction (or only renew the
        lease, when it is due); the run ids of each new configuration."""
        if (
            not self.unwritten_tells
            and not self.unwritten_asks
            and time.monotonic() - self.renewed_at < self.lease_s * RENEW_FRACTION
        ):
            return []
        try:
            with connection_scope(self.url) as conn:
                new_runs = db.record_step(
                    conn,
                    sweep_id=self.sweep_id,
                    token=self.token,
                    told=self.unwritten_tells,
                    asked=self.unwritten_asks,
                    seeds=self.spec.seeds,
                )
        except IntegrityError:
            # another driver recorded this trial (or these runs): we were taken over
            raise db.LeaseLost(self.sweep_id, self.token) from None
        self.renewed_at = time.monotonic()
        self.unwritten_tells, self.unwritten_asks = [], []
        return new_runs
