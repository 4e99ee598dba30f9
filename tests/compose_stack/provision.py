"""What the compose run needs from outside, fetched once into a cache the run creates.

No container registry is reachable here, but Debian's archive and PyPI are. So:
- the Compose v2 plugin comes from the docker-compose package of Debian's next release (the
  current one has only Compose v1, which rejects our file's `name:`), extracted from the .deb;
- a Debian base image is a debootstrap tarball, for `docker import`;
- Python packages go into images as wheels built on this host, served to `docker build` from
  127.0.0.1 (the builds run on the host's network, so nothing listens beyond loopback).

The cache (BPLAB_COMPOSE_CACHE, default /var/cache/bplab-compose-test) holds those three; each is
written under a temporary name and renamed, so an interrupted run leaves nothing half-made.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import http.server
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import tomllib
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CACHE = Path(os.environ.get("BPLAB_COMPOSE_CACHE", "/var/cache/bplab-compose-test"))
SUITE = "bookworm"
COMPOSE_SUITE = "trixie"  # its docker-compose package (2.26) is the v2 plugin
# What the stand-in images need besides bplab's own dependencies: pip's build backend for
# `pip install .` (pyproject's build-system), Flower for the monitoring profile, and what the
# images' Python (Debian's 3.11.2) needs but this host's newer 3.11 does not, so that
# `pip wheel` here leaves it out: redis requires async-timeout on Python < 3.11.3.
EXTRA_WHEELS = ["setuptools>=68", "wheel", "flower>=2.0,<2.1", "async-timeout>=4.0.3"]


def say(message: str) -> None:
    print(f"[compose] {message}", flush=True)


def run(argv: list[str], **kwargs) -> subprocess.CompletedProcess[str]:
    """A command whose failure is an error that shows its output."""
    kwargs.setdefault("capture_output", True)
    kwargs.setdefault("text", True)
    result = subprocess.run(argv, **kwargs)
    if result.returncode != 0:
        raise RuntimeError(
            f"{' '.join(map(str, argv))} exited {result.returncode}\n"
            f"{(result.stdout or '')[-4000:]}\n{(result.stderr or '')[-4000:]}"
        )
    return result


def debian_mirror() -> str:
    """apt's configured Debian mirror (the one the host already uses), else deb.debian.org."""
    sources = [Path("/etc/apt/sources.list"), *Path("/etc/apt/sources.list.d").glob("*")]
    for path in sources:
        with contextlib.suppress(OSError):
            for uri in re.findall(
                r"(?:URIs:|^deb(?:\s+\[[^]]*\])?)\s+(\S+)", path.read_text(), re.M
            ):
                if uri.rstrip("/").endswith("/debian"):
                    return uri.rstrip("/")
    return "http://deb.debian.org/debian"


def _publish(tmp: Path, final: Path) -> Path:
    """Move a finished download or build into the cache under its final name."""
    if final.is_dir():
        shutil.rmtree(final)
    os.replace(tmp, final)
    return final


def compose_plugin(cache: Path = CACHE) -> Path:
    """A directory for DOCKER_CONFIG whose cli-plugins/ holds the Compose v2 plugin."""
    config = cache / "docker-config"
    plugin = config / "cli-plugins" / "docker-compose"
    if plugin.exists():
        return config
    plugin.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache) as tmp:
        work = Path(tmp)
        # A private apt configuration: the host's own sources and lists stay as they are.
        (work / "lists" / "partial").mkdir(parents=True)
        (work / "archives" / "partial").mkdir(parents=True)
        (work / "next.list").write_text(
            f"deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] "
            f"{debian_mirror()} {COMPOSE_SUITE} main\n"
        )
        apt = [
            "-o", f"Dir::Etc::SourceList={work / 'next.list'}",
            "-o", "Dir::Etc::SourceParts=/nonexistent",
            "-o", f"Dir::State::Lists={work / 'lists'}",
            "-o", f"Dir::Cache={work}",
        ]  # fmt: skip
        run(["apt-get", *apt, "update", "-qq"])
        run(["apt-get", *apt, "download", "docker-compose"], cwd=work)
        (deb,) = work.glob("docker-compose_*.deb")
        run(["dpkg-deb", "-x", str(deb), str(work / "x")])
        shutil.copy2(work / "x/usr/libexec/docker/cli-plugins/docker-compose", work / "plugin")
        _publish(work / "plugin", plugin)
    say(f"compose plugin from {deb.name}")
    return config


def debian_tarball(cache: Path = CACHE) -> Path:
    """A minimal Debian root file system as a tar, for `docker import`."""
    tarball = cache / f"debian-{SUITE}-minbase.tar"
    if tarball.exists():
        return tarball
    with tempfile.TemporaryDirectory(dir=cache) as tmp:
        root = Path(tmp) / "root"
        run(["debootstrap", "--variant=minbase", SUITE, str(root), debian_mirror()])
        # For image builds, as Debian's official images do: a build that dies is thrown away
        # whole, so dpkg's fsync after every file buys nothing and costs minutes on this disk.
        (root / "etc/dpkg/dpkg.cfg.d/unsafe-io").write_text("force-unsafe-io\n")
        (root / "etc/apt/apt.conf.d/no-languages").write_text('Acquire::Languages "none";\n')
        # Nothing of the build host's apt cache belongs in an image.
        run(["sh", "-c", f"rm -rf {root}/var/cache/apt/archives/*.deb {root}/var/lib/apt/lists/*"])
        run(["tar", "-C", str(root), "--numeric-owner", "-cf", str(Path(tmp) / "t.tar"), "."])
        _publish(Path(tmp) / "t.tar", tarball)
    return tarball


def _requirements() -> list[str]:
    with open(REPO / "pyproject.toml", "rb") as f:
        return list(tomllib.load(f)["project"]["dependencies"]) + EXTRA_WHEELS


def wheelhouse(cache: Path = CACHE) -> Path:
    """Wheels of bplab's dependencies at the versions installed here, plus EXTRA_WHEELS.

    The versions are this environment's (pip freeze as constraints), so the workers train with
    the same NumPy as the reference runs that the results are compared with.
    """
    frozen = run([sys.executable, "-m", "pip", "freeze", "--exclude-editable"]).stdout
    constraints = "".join(
        line + "\n" for line in frozen.splitlines() if re.match(r"^[A-Za-z0-9_.-]+==", line)
    )
    key = hashlib.sha256((constraints + "\n".join(_requirements())).encode()).hexdigest()[:16]
    house = cache / f"wheelhouse-{key}"
    if house.exists():
        return house
    for stale in cache.glob("wheelhouse-*"):  # one wheelhouse at a time: the cache stays small
        shutil.rmtree(stale)
    with tempfile.TemporaryDirectory(dir=cache) as tmp:
        (Path(tmp) / "constraints.txt").write_text(constraints)
        wheels = Path(tmp) / "wheels"
        run(
            [sys.executable, "-m", "pip", "wheel", "--quiet", "--wheel-dir", str(wheels),
             "-c", str(Path(tmp) / "constraints.txt"), *_requirements()],
            timeout=900,
        )  # fmt: skip
        _publish(wheels, house)
    say(f"wheelhouse: {len(list(house.glob('*.whl')))} wheels")
    return house


@contextlib.contextmanager
def serve_directory(path: Path) -> Iterator[str]:
    """An HTTP directory listing of path on 127.0.0.1 (pip's --find-links reads it); its URL."""

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            pass

    handler = functools.partial(Quiet, directory=str(path))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
