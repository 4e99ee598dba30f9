"""The fault suite for population tasks (`bplab.train_runs`, what `bplab sweep submit` publishes
for runs of one shape): the same real workers and faults as test_faults.py, aimed at a
process that trains several runs at once.

A population shares one process but not its fate in the database: each member is claimed,
leased, fenced and checkpointed on its own. So a fault that hits the process hits every
member still training, and each of them must come back through its own lease and checkpoint,
while members that had already finished keep their result. check_sweep then asserts what it
asserts for single runs: rows and weights bit-identical to a clean run of the same seed.
"""

from __future__ import annotations

import os
import signal
import time

import pytest

from tests.faults.harness import (
    FaultStack,
    busy_child,
    check_sweep,
    checkpoints_of,
    kill_worker_group,
    make_sweep,
    pool_children,
    resumed_runs,
    running_on,
    runs_of,
    say,
    wait_all_terminal,
    wait_for,
)

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.slow]

# A population of a few XOR nets trained ~8,000 epochs/s here through a worker when this was
# written (all members at once), a run alone ~13,000; the engine alone now trains 4-8
# members at 11,000-17,000 epochs/s (member-major), so a LONG run still lasts over a
# second: long enough to be hit mid-way, short enough that the retried runs, trained one by
# one after the fault, take a few seconds. Checkpoints every 4,000 epochs.
SHORT = 3_003
LONG = 24_003


def group_on(stack: FaultStack, pid: int, sweep_id: int) -> list[int]:
    """Wait until the population in ``pid`` has checkpointed every member still training
    (so the fault has something to resume from); then its running run ids."""

    def checkpointed() -> bool:
        group = running_on(stack, pid)
        stored = checkpoints_of(stack, group)
        return len(group) >= 2 and all(r in stored for r in group)

    wait_for(checkpointed, 30, f"the population in {pid} to checkpoint its members", 0.1)
    return running_on(stack, pid)


@pytest.mark.parametrize("target", ["pool child", "whole worker"])
def test_killing_a_population_task_mid_way_loses_nothing(stack: FaultStack, target: str) -> None:
    workers = [stack.start_bplab_worker() for _ in range(2)]
    # One task of 6 runs: 3 end at SHORT epochs (they finish before the kill), 3 at LONG.
    sweep_id, run_ids = make_sweep(stack, seeds=3, epochs=(SHORT, LONG), population=6)
    short = {r["id"] for r in runs_of(stack, sweep_id) if r["config"]["epochs"] == SHORT}
    pid, _ = busy_child(stack, workers)
    worker = next(w for w in workers if pid in pool_children(w))
    survivor = next(w for w in workers if w is not worker)

    def shorts_done() -> bool:
        return all(r["status"] == "succeeded" for r in runs_of(stack, sweep_id) if r["id"] in short)

    wait_for(shorts_done, 30, "the short members to finish inside the population", 0.1)
    group_on(stack, pid, sweep_id)
    os.kill(pid, signal.SIGSTOP)  # freeze it, to name the runs it dies with for sure
    lost = running_on(stack, pid)
    stored = checkpoints_of(stack, lost)
    if target == "pool child":
        os.kill(pid, signal.SIGKILL)
    else:
        kill_worker_group(worker)
    say(
        f"kill -9 {target} (pool child {pid} of worker {worker.proc.pid}) while its population "
        f"trained runs {lost} (checkpoints at {[stored[r][1] for r in lost]}); "
        f"runs {sorted(short)} had finished in it"
    )
    assert len(lost) >= 2 and not set(lost) & short, (lost, short)

    wait_all_terminal(stack, sweep_id, timeout=120)
    counts = check_sweep(stack, sweep_id)
    assert counts["succeeded"] == len(run_ids), counts
    finals = {r["id"]: r for r in runs_of(stack, sweep_id)}
    for run_id in short:  # finished before the fault: kept, never trained again
        assert finals[run_id]["attempt"] == 1, finals[run_id]
    for run_id in lost:
        assert finals[run_id]["attempt"] >= 2, finals[run_id]
        assert finals[run_id]["worker"].rsplit(":", 1)[1] != str(pid), finals[run_id]
    if target == "whole worker":
        survivor_pids = {str(c) for c in pool_children(survivor)}
        for run_id in lost:
            assert finals[run_id]["worker"].rsplit(":", 1)[1] in survivor_pids, finals[run_id]
    else:
        assert all(w.proc.poll() is None for w in workers), "a worker main process died"
    resumed = resumed_runs(stack) & set(lost)
    assert resumed == set(lost), f"runs {sorted(set(lost) - resumed)} started over"
    say(
        f"runs {lost} re-queued by the reconciler, resumed from the population's checkpoints "
        f"and finished (attempts {[finals[r]['attempt'] for r in lost]}); short runs kept"
    )


def test_a_stalled_population_waking_up_late_is_fenced_off(stack: FaultStack) -> None:
    workers = [stack.start_bplab_worker() for _ in range(2)]
    sweep_id, run_ids = make_sweep(stack, seeds=3, epochs=LONG, population=3)
    pid, _ = busy_child(stack, workers)
    stalled_worker = next(w for w in workers if pid in pool_children(w))
    group_on(stack, pid, sweep_id)
    time.sleep(0.3)  # somewhere in training or in the middle of a population flush
    # A transaction left open by the stop is ended by the server after half a lease (as in
    # the single-run test), so the members' row locks do not keep them from the reconciler.
    os.kill(pid, signal.SIGSTOP)
    group = running_on(stack, pid)
    say(
        f"SIGSTOP pool child {pid} (worker {stalled_worker.proc.pid}) while its population "
        f"trained runs {group}; lease 3 s"
    )
    try:
        wait_for(
            lambda: all(
                r["status"] == "succeeded" for r in runs_of(stack, sweep_id) if r["id"] in group
            ),
            90,
            f"runs {group} to be re-queued and finished by the other worker",
        )
        before = {r["id"]: r for r in runs_of(stack, sweep_id) if r["id"] in group}
        saved = checkpoints_of(stack, group)
    finally:
        os.kill(pid, signal.SIGCONT)
    say(f"runs {group} finished by another worker; SIGCONT {pid}")
    fenced = [f"run {r}: attempt 1 was taken over" for r in group]
    wait_for(
        lambda: all(line in stalled_worker.text() for line in fenced),
        30,
        f"the woken population to notice that runs {group} were taken over",
    )
    wait_all_terminal(stack, sweep_id, timeout=60)
    counts = check_sweep(stack, sweep_id)
    assert counts["succeeded"] == len(run_ids), counts
    after = {r["id"]: r for r in runs_of(stack, sweep_id) if r["id"] in group}
    # Nothing of attempt 1 landed after the takeover: not the status or summary, not a
    # checkpoint over the newer attempt's (check_sweep covers the rows and the weights).
    assert after == before, (before, after)
    assert checkpoints_of(stack, group) == saved
    for run_id in group:
        assert after[run_id]["attempt"] == 2, after[run_id]
        assert after[run_id]["worker"].rsplit(":", 1)[1] != str(pid), after[run_id]
    assert all(w.proc.poll() is None for w in workers)
    say(f"the woken population's writes for runs {group} were all refused; attempt 2's stand")
