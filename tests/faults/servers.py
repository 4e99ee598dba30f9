"""Stand-ins the fault suite starts and breaks on purpose: a Redis server of its own and a TCP
proxy between the workers and PostgreSQL that can cut the line.

Both listen on 127.0.0.1 only; the Redis server is started and killed by its own pid.
"""

from __future__ import annotations

import contextlib
import shutil
import signal
import socket
import subprocess
import threading
from pathlib import Path

import redis

from tests.distributed.stack import wait_for

# --- a Redis server of our own ------------------------------------------------------------


class RedisServer:
    """redis-server on 127.0.0.1:port without persistence, started and killed by its pid."""

    def __init__(self, tmp: Path, port: int) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise AssertionError(
                "the Redis restart test needs `redis-server` on PATH (apt-get install "
                "redis-server); it starts and kills a Redis of its own"
            )
        self.argv = [
            binary,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(tmp),
        ]
        self.port = port
        self.log = tmp / "redis.log"
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(self.argv, stdout=out, stderr=subprocess.STDOUT)
        client = redis.Redis(host="127.0.0.1", port=self.port)

        def up() -> bool:
            try:
                return bool(client.ping())
            except redis.RedisError:
                return False

        wait_for(up, 15, f"redis-server on port {self.port}")
        client.close()

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.kill()


# --- a TCP proxy that can cut the line ------------------------------------------------------


class TcpProxy:
    """127.0.0.1:port -> target, forwarding bytes both ways in threads.

    ``cut()`` closes every open connection and refuses new ones (accepted, then closed at once)
    until ``restore()``: what a network partition or a server restart looks like to a client.
    """

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.down = False
        self._conns: list[socket.socket] = []
        self._lock = threading.Lock()
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if self.down:
                client.close()
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=5)
                upstream.settimeout(None)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._conns += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
                s.close()

    def cut(self) -> None:
        self.down = True
        with self._lock:
            conns, self._conns = self._conns, []
        for s in conns:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            s.close()

    def restore(self) -> None:
        self.down = False

    def close(self) -> None:
        self._closed = True
        self.cut()
        self.listener.close()
