"""A private Docker engine: dockerd with its own data, exec root, pid file and socket.

It shares nothing with a Docker engine the machine may run already, and it is stopped by the
pid of the process started here (never by name). It leaves the host's network as it found it:
--bridge=none, no default bridge (docker0): builds run on the host's network (`docker build
--network host`) and the compose project makes and removes its own network; --iptables=false
and --ip-forward=false, no firewall chains, no FORWARD policy set to DROP, no sysctl changed
(dockerd keeps those after it exits). Containers need no way out: they talk to each other on
the compose network, and the published ports reach them through docker-proxy on 127.0.0.1.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

from tests.compose_stack.provision import REPO, run, say

COMPOSE_FILE = REPO / "docker-compose.yml"
OVERRIDE = Path(__file__).resolve().parent / "compose.override.yml"


class DockerEngine:
    def __init__(self, docker_config: Path) -> None:
        # Short: the socket's path must fit in a sockaddr_un (108 bytes).
        self.root = Path(tempfile.mkdtemp(prefix="bplab-dockerd-", dir="/tmp"))
        self.socket = self.root / "docker.sock"
        self.log = self.root / "dockerd.log"
        self.docker_config = docker_config
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def env(self) -> dict[str, str]:
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("DOCKER_", "COMPOSE_", "BPLAB_", "POSTGRES_", "REDIS_"))
        }
        env.update(
            DOCKER_HOST=f"unix://{self.socket}",
            DOCKER_CONFIG=str(self.docker_config),
            # The legacy builder: no buildx plugin here, and it is all our Dockerfiles need.
            DOCKER_BUILDKIT="0",
        )
        return env

    def start(self) -> None:
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen(
                [
                    shutil.which("dockerd") or "dockerd",
                    "--data-root", str(self.root / "data"),
                    "--exec-root", str(self.root / "exec"),
                    "--pidfile", str(self.root / "dockerd.pid"),
                    "--host", f"unix://{self.socket}",
                    "--bridge", "none",
                    "--iptables=false",
                    "--ip-forward=false",
                    "--log-level", "warn",
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"dockerd exited {self.proc.returncode}:\n{self.logs()}")
            probe = subprocess.run(["docker", "version"], env=self.env, capture_output=True)
            if probe.returncode == 0:
                say(f"dockerd up (pid {self.proc.pid}, {self.root})")
                return
            time.sleep(0.5)
        raise RuntimeError(f"dockerd did not answer within 60 s:\n{self.logs()}")

    def logs(self) -> str:
        return self.log.read_text(errors="replace")[-4000:] if self.log.exists() else ""

    def docker(
        self, *args: str, timeout: float = 600, input: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        return run(["docker", *args], env=self.env, timeout=timeout, input=input)

    def compose(
        self, *args: str, env: dict[str, str], timeout: float = 300, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        """`docker compose` on the project's own file plus the image-name override."""
        argv = ["docker", "compose", "--project-directory", str(REPO)]
        argv += ["-f", str(COMPOSE_FILE), "-f", str(OVERRIDE), *args]
        if check:
            return run(argv, env={**self.env, **env}, timeout=timeout)
        return subprocess.run(
            argv, env={**self.env, **env}, timeout=timeout, capture_output=True, text=True
        )

    def stop(self) -> None:
        """Stop dockerd by its pid (it stops its containers and its containerd), then tidy up."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=30)
            say(f"dockerd (pid {self.proc.pid}) stopped, exit {self.proc.returncode}")
        self._stop_orphaned_containerd()
        self._unmount_all()
        shutil.rmtree(self.root, ignore_errors=True)

    def _stop_orphaned_containerd(self) -> None:
        # dockerd's own containerd normally exits with it; if it did not, it is still ours: its
        # pid file lies under our exec root.
        pidfile = self.root / "exec" / "containerd" / "containerd.pid"
        with contextlib.suppress(OSError, ValueError):
            pid = int(pidfile.read_text().strip())
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            if str(self.root).encode() in cmdline:
                os.kill(pid, signal.SIGTERM)
                say(f"stopped dockerd's containerd (pid {pid})")

    def _unmount_all(self) -> None:
        # Whatever dockerd left mounted under its roots (overlay layers, netns files).
        mounts = [
            line.split()[4]
            for line in Path("/proc/self/mountinfo").read_text().splitlines()
            if line.split()[4].startswith(str(self.root))
        ]
        for target in sorted(mounts, key=len, reverse=True):
            subprocess.run(["umount", "-l", target], capture_output=True)
