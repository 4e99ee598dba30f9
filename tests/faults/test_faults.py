"""Issue 7's fault suite: real workers, real faults, and the invariants checked afterwards.

Each test prints (`pytest -s`) what it injected and what it checked. After every fault,
check_sweep asserts: every run terminal, exactly one row per (run, recorded epoch), rows and
final weights bit-identical to a clean run of the same seed, one weights row per succeeded run.
"""

from __future__ import annotations

import os
import signal
import time

import pytest
from sqlalchemy import text

from service.db.session import session_scope
from tests.faults.harness import (
    FaultStack,
    busy_child,
    check_sweep,
    free_port,
    kill_worker_group,
    make_sweep,
    pool_children,
    resumed_runs,
    running_on,
    runs_of,
    say,
    statuses,
    wait_all_terminal,
    wait_for,
)
from tests.faults.servers import RedisServer, TcpProxy

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.slow]

# ~13,000 XOR epochs/s on this machine: a run lasts a few seconds, checkpoints every 4,000.
EPOCHS = 40_003
LONG = 2 * EPOCHS  # for the cancel test: runs that are surely mid-way when it cancels


def test_killing_pool_children_repeatedly_loses_nothing(stack: FaultStack) -> None:
    workers = [stack.start_bplab_worker() for _ in range(2)]
    sweep_id, run_ids = make_sweep(stack, seeds=8, epochs=EPOCHS)
    killed: list[tuple[int, int]] = []
    i = 0
    while len(killed) < 4:
        # Alternate between the workers, or take whichever is training when one is idle.
        pid, _ = busy_child(
            stack, [workers[i % 2], workers[(i + 1) % 2]], exclude={p for p, _ in killed}
        )
        worker = next(w for w in workers if pid in pool_children(w))
        i += 1
        time.sleep(0.8)  # let it train past a checkpoint or two
        os.kill(pid, signal.SIGSTOP)  # freeze it, to name the run it dies on for sure
        training = running_on(stack, pid)
        os.kill(pid, signal.SIGKILL)
        if not training:
            continue  # it was between runs
        killed.append((pid, training[0]))
        say(
            f"kill -9 pool child {pid} of worker {worker.proc.pid} while it trained run "
            f"{training[0]}"
        )
    wait_all_terminal(stack, sweep_id, timeout=150)
    counts = check_sweep(stack, sweep_id)
    assert counts["succeeded"] == len(run_ids), counts
    attempts = {r["id"]: r["attempt"] for r in runs_of(stack, sweep_id)}
    for _pid, run_id in killed:
        assert attempts[run_id] >= 2, (run_id, attempts)
    resumed = resumed_runs(stack) & {r for _p, r in killed}
    assert resumed, "no killed run was resumed from a checkpoint"
    assert all(w.proc.poll() is None for w in workers), "a worker main process died"
    say(
        f"killed runs {sorted({r for _p, r in killed})} retried ({attempts}); "
        f"resumed from checkpoints: {sorted(resumed)}"
    )


def test_killing_a_whole_worker_while_another_runs(stack: FaultStack) -> None:
    doomed, survivor = stack.start_bplab_worker(), stack.start_bplab_worker()
    sweep_id, run_ids = make_sweep(stack, seeds=4, epochs=EPOCHS)
    pid, _ = busy_child(stack, doomed)
    time.sleep(1.0)
    children = pool_children(doomed)
    lost = [r for c in children for r in running_on(stack, c)]
    kill_worker_group(doomed)
    say(
        f"kill -9 worker {doomed.proc.pid} and its pool {children} (process group) while it "
        f"trained run(s) {lost}; worker {survivor.proc.pid} keeps running"
    )
    assert lost
    wait_all_terminal(stack, sweep_id, timeout=120)
    counts = check_sweep(stack, sweep_id)
    assert counts["succeeded"] == len(run_ids), counts
    finals = {r["id"]: r for r in runs_of(stack, sweep_id)}
    survivor_pids = {str(c) for c in pool_children(survivor)}
    for run_id in lost:
        assert finals[run_id]["attempt"] >= 2, finals[run_id]
        assert finals[run_id]["worker"].rsplit(":", 1)[1] in survivor_pids, finals[run_id]
    say(
        f"runs {lost} finished on the surviving worker (attempts "
        f"{[finals[r]['attempt'] for r in lost]})"
    )


def test_redis_restart_without_persistence_loses_no_run(stack: FaultStack) -> None:
    server = RedisServer(stack.tmp, free_port())
    stack.redis_port = server.port
    server.start()
    try:
        stack.start_bplab_worker()
        sweep_id, run_ids = make_sweep(stack, seeds=8, epochs=10_003)
        wait_for(lambda: statuses(stack, sweep_id)["succeeded"] >= 1, 60, "a first run to finish")
        before = statuses(stack, sweep_id)
        in_queue = stack.redis().llen(stack.queue)
        server.kill()
        say(
            f"kill -9 redis-server (pid {server.proc.pid}, no persistence) with {in_queue} "
            f"message(s) queued; runs {before}"
        )
        time.sleep(2.0)
        server.start()
        say(f"redis-server restarted empty on port {server.port} (pid {server.proc.pid})")
        assert stack.redis().llen(stack.queue) == 0
        wait_all_terminal(stack, sweep_id, timeout=120)
        counts = check_sweep(stack, sweep_id)
        assert counts["succeeded"] == len(run_ids), counts
        assert "published" in stack.worker_logs()
        say("the workers' reconciler published the lost runs again; all completed")
    finally:
        stop_all_and_redis(stack, server)


def stop_all_and_redis(stack: FaultStack, server: RedisServer) -> None:
    from tests.faults.harness import stop_all

    stop_all(stack)
    server.stop()


def test_postgresql_unreachable_for_10_seconds(stack: FaultStack) -> None:
    from sqlalchemy.engine import make_url

    url = make_url(stack.database_url)
    proxy = TcpProxy(url.host or "127.0.0.1", url.port or 5432)
    stack.worker_database_url = url.set(host="127.0.0.1", port=proxy.port).render_as_string(
        hide_password=False
    )
    try:
        workers = [stack.start_bplab_worker() for _ in range(2)]
        sweep_id, run_ids = make_sweep(stack, seeds=6, epochs=EPOCHS)
        busy_child(stack, workers[0])
        time.sleep(1.0)
        proxy.cut()
        say(
            f"PostgreSQL cut off from the workers (proxy port {proxy.port}) for 10 s; "
            f"runs {statuses(stack, sweep_id)}"
        )
        time.sleep(10)
        proxy.restore()
        say("PostgreSQL reachable again")
        wait_all_terminal(stack, sweep_id, timeout=150)
        counts = check_sweep(stack, sweep_id)
        assert counts["succeeded"] == len(run_ids), counts
        assert all(w.proc.poll() is None for w in workers), "a worker died"
        logs = stack.worker_logs()
        assert "retry" in logs, "no database write was retried"
        say("workers survived; recording retried through the outage")
    finally:
        proxy.close()


def test_a_poison_run_fails_after_max_attempts(stack: FaultStack) -> None:
    sweep_id, run_ids = make_sweep(stack, seeds=4, epochs=3_003, publish=False)
    poison = run_ids[1]
    # The documented fault-injection hook (service.reliability.crash_run_ids): the process that
    # claims this run dies at once, on every attempt.
    stack.extra_env["BPLAB_TEST_CRASH_RUN_IDS"] = str(poison)
    workers = [stack.start_bplab_worker() for _ in range(2)]
    from service.producer import publish_runs

    publish_runs(run_ids, stack.broker_url, queue=stack.queue)
    say(f"run {poison} kills its pool process on every attempt (BPLAB_TEST_CRASH_RUN_IDS)")
    wait_all_terminal(stack, sweep_id, timeout=120)
    counts = check_sweep(stack, sweep_id)
    finals = {r["id"]: r for r in runs_of(stack, sweep_id)}
    assert finals[poison]["status"] == "failed", finals[poison]
    assert finals[poison]["attempt"] == 3, finals[poison]
    assert "gave up after 3 attempt(s)" in finals[poison]["error"]
    assert counts["succeeded"] == len(run_ids) - 1, counts
    assert all(w.proc.poll() is None for w in workers)
    say(f"run {poison} failed after {finals[poison]['attempt']} attempts; the rest succeeded")


def test_cancel_mid_sweep_then_retry_the_cancelled_runs(stack: FaultStack) -> None:
    workers = [stack.start_bplab_worker() for _ in range(2)]
    sweep_id, run_ids = make_sweep(stack, seeds=4, epochs=LONG)
    for w in workers:
        busy_child(stack, w)
    time.sleep(0.5)
    cancelled_at = time.monotonic()
    result = stack.bplab("sweep", "cancel", str(sweep_id))
    assert result.returncode == 0, result.stderr
    say(f"bplab sweep cancel {sweep_id}: {result.stderr.strip()}")
    assert "running run(s)" in result.stderr

    def settled() -> bool:
        with session_scope(stack.database_url, readonly=True) as session:
            n = session.execute(
                text(
                    "SELECT count(*) FROM runs WHERE sweep_id = :s AND status = 'cancelled' "
                    "AND attempt > 0 AND epochs_run IS NULL"
                ),
                {"s": sweep_id},
            ).scalar_one()
        return n == 0

    wait_for(settled, 10, "the cancelled running runs to record their curve and stop")
    took = time.monotonic() - cancelled_at
    time.sleep(2.0)  # time for a leftover message to be delivered, had one been able to start
    finals = runs_of(stack, sweep_id)
    # Runs that finished before the cancel keep their result; none is left queued or running.
    assert {r["status"] for r in finals} <= {"succeeded", "cancelled"}, finals
    stopped = [r for r in finals if r["status"] == "cancelled" and r["attempt"] > 0]
    never = [r for r in finals if r["status"] == "cancelled" and r["attempt"] == 0]
    assert stopped and never, finals
    # Stopped where they were (at the latest, a cancel that lands as a run commits its last
    # epoch still wins: the run ends cancelled with its whole curve).
    assert all(0 < r["epochs_run"] <= LONG for r in stopped), [
        (r["id"], r["epochs_run"], r["error"]) for r in stopped
    ]
    for w in workers:
        for pid in pool_children(w):
            assert running_on(stack, pid) == []
    check_sweep(stack, sweep_id)
    say(
        f"runs {[r['id'] for r in stopped]} stopped within {took:.1f} s at epochs "
        f"{[r['epochs_run'] for r in stopped]}, curves kept; {len(never)} queued runs never started"
    )

    result = stack.bplab("sweep", "retry", str(sweep_id), "--cancelled")
    assert result.returncode == 0, result.stderr
    say(f"bplab sweep retry {sweep_id} --cancelled: {result.stderr.strip()}")
    wait_all_terminal(stack, sweep_id, timeout=120)
    counts = check_sweep(stack, sweep_id)
    assert counts["succeeded"] == len(run_ids), counts
    say("every retried run trained afresh from epoch 0 and succeeded")


def test_a_stalled_worker_waking_up_late_is_fenced_off(stack: FaultStack) -> None:
    stalled_worker, other = stack.start_bplab_worker(), stack.start_bplab_worker()
    sweep_id, run_ids = make_sweep(stack, seeds=3, epochs=EPOCHS)
    pid, _ = busy_child(stack, stalled_worker)
    time.sleep(0.5)
    # Possibly in the middle of a write: the server ends a transaction left idle for half a
    # lease, so even then its row lock does not keep the run from the reconciler.
    os.kill(pid, signal.SIGSTOP)
    (run_id,) = running_on(stack, pid)
    say(
        f"SIGSTOP pool child {pid} (worker {stalled_worker.proc.pid}) while it trained run "
        f"{run_id}; lease 3 s"
    )
    try:
        wait_for(
            lambda: (
                next(r for r in runs_of(stack, sweep_id) if r["id"] == run_id)["status"]
                == "succeeded"
            ),
            90,
            f"run {run_id} to be re-queued and finished by the other worker",
        )
    finally:
        os.kill(pid, signal.SIGCONT)
    say(f"run {run_id} finished by another worker; SIGCONT {pid}")
    wait_for(
        lambda: f"run {run_id}: attempt 1 was taken over" in stalled_worker.text(),
        30,
        "the woken worker to notice it was fenced off",
    )
    wait_all_terminal(stack, sweep_id, timeout=120)
    counts = check_sweep(stack, sweep_id)
    assert counts["succeeded"] == len(run_ids), counts
    final = next(r for r in runs_of(stack, sweep_id) if r["id"] == run_id)
    assert final["attempt"] == 2, final
    assert final["worker"].rsplit(":", 1)[1] != str(pid), final
    assert stalled_worker.proc.poll() is None and other.proc.poll() is None
    say(
        f"the late writes of attempt 1 were rejected; run {run_id} is attempt 2's "
        f"(worker {final['worker']})"
    )
