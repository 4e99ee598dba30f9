"""docker-compose.yml run for real: images built offline, two workers, a sweep, a worker killed.

Steps (issue 23), each timed in the output:
1. a private dockerd (tests/compose_stack/engine.py);
2. images: a Debian base from debootstrap, stand-ins for redis, postgres, python and flower
   (images/), and bplab:latest from the project's own Dockerfile with the offline build args;
3. `docker compose up -d --scale worker=2`, waiting on the healthchecks and the migrate service;
4. a sweep submitted from this host's CLI through the ports published on 127.0.0.1, one worker
   container `docker kill`ed while it trains, every run checked against a clean local run;
5. `--profile monitoring` (Flower); `docker compose down -v`; dockerd stopped.
"""

from __future__ import annotations

import json
import secrets
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import yaml

from service.db import repository as repo
from service.db.session import dispose_engines, session_scope
from tests.compose_stack.checks import check_attempts, check_results, check_roles
from tests.compose_stack.engine import DockerEngine
from tests.compose_stack.host import bplab, database_url, query
from tests.compose_stack.provision import (
    CACHE,
    REPO,
    compose_plugin,
    debian_tarball,
    say,
    serve_directory,
    wheelhouse,
)
from tests.distributed.stack import free_port, wait_for

IMAGES = Path(__file__).resolve().parent / "images"
BASE = "bplab-test/debian:bookworm"
PYTHON = "bplab-test/python:3.11"
WORKERS = 2

# Four XOR runs, one per worker process, of 300k epochs: long enough (~20 s each with 4 worker
# processes on 2 cores; 100k took 7 s on an idle machine, too short for the first checkpoint)
# that a worker is killed mid-run after its first checkpoint (taken once 10 s of training
# passed). Each run is trained again for the comparison, so no more.
SWEEP = {
    "name": "compose-stack",
    "dataset": "xor",
    "method": "grid",
    "seeds": 2,
    "parameters": {
        "learning_rate": [0.5, 1.0],
        "hidden": [2],
        "momentum": 0.9,
        "epochs": 300_000,
        "log_every": 250,
    },
}


class Timer:
    def __init__(self) -> None:
        self.start = self.last = time.monotonic()
        self.steps: list[tuple[str, float]] = []

    def step(self, name: str) -> None:
        now = time.monotonic()
        self.steps.append((name, now - self.last))
        say(f"{name}: {now - self.last:.0f} s (total {now - self.start:.0f} s)")
        self.last = now


def build_images(engine: DockerEngine, wheels_url: str) -> None:
    """The Debian base, then the stand-ins and bplab:latest, independent builds side by side."""
    engine.docker("import", str(debian_tarball()), BASE)

    def build(tag: str, context: Path, **build_args: str) -> None:
        args = [f"--build-arg={k}={v}" for k, v in build_args.items()]
        started = time.monotonic()
        engine.docker("build", "--network", "host", "--quiet", "-t", tag, *args, str(context))
        say(f"built {tag} in {time.monotonic() - started:.0f} s")

    with ThreadPoolExecutor(max_workers=3) as pool:
        side = [
            pool.submit(build, "bplab-test/postgres:standin", IMAGES / "postgres", BASE_IMAGE=BASE),
            pool.submit(build, "bplab-test/redis:standin", IMAGES / "redis", BASE_IMAGE=BASE),
        ]
        build(PYTHON, IMAGES / "python", BASE_IMAGE=BASE)
        # The project's Dockerfile as a user builds it, with the two offline build args.
        side.append(
            pool.submit(build, "bplab:latest", REPO, PYTHON_IMAGE=PYTHON, WHEELHOUSE=wheels_url)
        )
        build(
            "bplab-test/flower:standin",
            IMAGES / "flower",
            PYTHON_IMAGE=PYTHON,
            WHEELHOUSE=wheels_url,
        )
        for future in side:
            future.result()


def compose_env() -> dict[str, str]:
    """The compose file's own variables: fresh passwords, ports free on this host's 127.0.0.1."""
    return {
        "POSTGRES_PASSWORD": secrets.token_hex(8),
        "POSTGRES_SUPERUSER_PASSWORD": secrets.token_hex(8),
        "BPLAB_SQL_PASSWORD": secrets.token_hex(8),
        "REDIS_PASSWORD": secrets.token_hex(8),
        "BPLAB_POSTGRES_PORT": str(free_port()),
        "BPLAB_REDIS_PORT": str(free_port()),
        "BPLAB_FLOWER_PORT": str(free_port()),
    }


def services(engine: DockerEngine, env: dict[str, str]) -> list[dict]:
    out = engine.compose("ps", "--all", "--format", "json", env=env).stdout.strip()
    if out.startswith("["):
        return json.loads(out)
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def wait_stack_ready(engine: DockerEngine, env: dict[str, str], timeout: float = 240) -> None:
    """Healthy redis and postgres, migrate exited 0, WORKERS workers running and consuming."""

    def ready() -> bool:
        by = {}
        for s in services(engine, env):
            by.setdefault(s["Service"], []).append(s)
        migrate = by.get("migrate", [{}])[0]
        if migrate.get("State") == "exited" and migrate.get("ExitCode") != 0:
            raise AssertionError("migrate failed:\n" + logs(engine, env, "migrate"))
        return (
            all(by.get(name, [{}])[0].get("Health") == "healthy" for name in ("redis", "postgres"))
            and migrate.get("State") == "exited"
            and len([w for w in by.get("worker", []) if w.get("State") == "running"]) == WORKERS
        )

    try:
        wait_for(ready, timeout, "the stack to be up", interval=1)
        wait_for(
            lambda: logs(engine, env, "worker").count(" ready.") >= WORKERS,
            120,
            "both workers to consume",
            interval=1,
        )
    except AssertionError as exc:
        state = json.dumps(services(engine, env), indent=1)
        raise AssertionError(f"{exc}\n{state}\n{logs(engine, env)[-8000:]}") from None


def logs(engine: DockerEngine, env: dict[str, str], *names: str) -> str:
    result = engine.compose("logs", "--no-color", *names, env=env, timeout=60, check=False)
    return result.stdout + result.stderr


def kill_a_busy_worker(
    engine: DockerEngine, env: dict[str, str], sweep_id: int
) -> tuple[str, set[int]]:
    """`docker kill` a worker container whose runs are all mid-training and checkpointed.

    runs.worker is host:pid, and a container's host name is its short id. Returns the killed
    container's short id and the runs it was training.
    """
    url = database_url(env)
    containers = engine.compose("ps", "--quiet", "worker", env=env).stdout.split()
    assert len(containers) == WORKERS, containers
    chosen: dict[str, set[int]] = {}

    def busy_and_checkpointed() -> bool:
        running = query(
            url,
            "SELECT id, worker FROM runs WHERE sweep_id = :s AND status = 'running'",
            s=sweep_id,
        )
        saved = {r for (r,) in query(url, "SELECT run_id FROM checkpoints")}
        per: dict[str, set[int]] = {}
        for run_id, worker in running:
            per.setdefault(worker.split(":")[0], set()).add(run_id)
        for container in containers:
            mine = per.get(container[:12], set())
            if len(per) == WORKERS and mine and mine <= saved:
                chosen[container[:12]] = mine
                return True
        return False

    wait_for(
        busy_and_checkpointed, 120, "both workers training, one with checkpoints", interval=0.5
    )
    ((short, runs),) = chosen.items()
    engine.docker("kill", short)
    say(f"killed worker container {short} mid-sweep: it was training runs {sorted(runs)}")
    return short, runs


def sweep_through_the_stack(engine: DockerEngine, env: dict[str, str], tmp: Path) -> None:
    url = database_url(env)
    current = bplab(env, "db", "current", cwd=tmp).stdout
    say(f"bplab db current (host CLI, 127.0.0.1:{env['BPLAB_POSTGRES_PORT']}): {current.strip()}")
    spec = tmp / "compose-sweep.yaml"
    spec.write_text(yaml.safe_dump(SWEEP))
    sweep_id = int(bplab(env, "sweep", "submit", str(spec), cwd=tmp).stdout.split()[-1])
    killed, interrupted = kill_a_busy_worker(engine, env, sweep_id)

    def finished() -> bool:
        with session_scope(url, readonly=True) as session:
            counts = repo.status_counts(session, sweep_id)
        return counts["queued"] == 0 and counts["running"] == 0

    try:
        wait_for(finished, 360, f"every run of sweep {sweep_id} to finish", interval=1)
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{logs(engine, env, 'worker')[-8000:]}") from None
    check_results(engine, url, sweep_id)
    check_attempts(url, sweep_id, killed, interrupted)
    resumed = logs(engine, env, "worker").count("resumes from its checkpoint")
    assert resumed >= len(interrupted), f"{resumed} resumptions logged for {interrupted}"
    state = engine.docker(
        "inspect", "--format", "{{.State.Status}} restarts={{.RestartCount}}", killed
    )
    say(
        f"killed container afterwards: {state.stdout.strip()}; "
        f"{resumed} runs resumed from a checkpoint"
    )
    check_roles(env, tmp, sweep_id, runs=2 * SWEEP["seeds"])


def check_flower(engine: DockerEngine, env: dict[str, str]) -> None:
    engine.compose(
        "--profile", "monitoring", "up", "--detach", "--pull", "never", "flower", env=env
    )
    base = f"http://127.0.0.1:{env['BPLAB_FLOWER_PORT']}"

    def answers() -> bool:
        try:
            with urllib.request.urlopen(f"{base}/healthcheck", timeout=5) as r:
                return r.read() == b"OK"
        except OSError:
            return False

    try:
        wait_for(answers, 90, "Flower to answer on 127.0.0.1", interval=1)
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{logs(engine, env, 'flower')[-4000:]}") from None
    try:
        urllib.request.urlopen(f"{base}/api/workers", timeout=10)
        raise AssertionError("Flower's API answered without authentication")
    except urllib.error.HTTPError as exc:
        assert exc.code == 401, exc
    say(f"flower: {base}/healthcheck OK; its API refuses unauthenticated calls (401)")


def compose_down(engine: DockerEngine, env: dict[str, str]) -> None:
    engine.compose("--profile", "monitoring", "down", "--volumes", "--timeout", "30", env=env)
    left = engine.docker("ps", "--all", "--quiet").stdout.split()
    volumes = engine.docker("volume", "ls", "--quiet").stdout.split()
    assert not left and not volumes, f"left after down -v: {left} {volumes}"


def run_stack(tmp: Path) -> list[tuple[str, float]]:
    """The whole run; returns each step's seconds. dockerd is stopped whatever happens."""
    timer = Timer()
    CACHE.mkdir(parents=True, exist_ok=True)
    docker_config = compose_plugin()
    debian_tarball()
    house = wheelhouse()
    timer.step("cache (compose plugin, debootstrap tarball, wheelhouse)")
    engine = DockerEngine(docker_config)
    env = compose_env()
    up = False
    try:
        engine.start()
        timer.step("dockerd")
        with serve_directory(house) as wheels_url:
            build_images(engine, wheels_url)
        timer.step("images built")
        up = True
        engine.compose("up", "--detach", "--pull", "never", "--scale", f"worker={WORKERS}", env=env)
        wait_stack_ready(engine, env)
        timer.step(f"compose up --scale worker={WORKERS}, healthy, migrated")
        sweep_through_the_stack(engine, env, tmp)
        timer.step("sweep with a worker killed, checked")
        check_flower(engine, env)
        timer.step("monitoring profile")
        compose_down(engine, env)
        up = False
        timer.step("compose down -v")
    finally:
        dispose_engines(database_url(env))
        if up:
            print(logs(engine, env)[-12000:], flush=True)
            engine.compose("--profile", "monitoring", "down", "--volumes", "--timeout", "10",
                           env=env, check=False)  # fmt: skip
        engine.stop()
        timer.step("dockerd stopped")
    return timer.steps
