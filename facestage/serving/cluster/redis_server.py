"""A local ``redis-server`` for a cluster started without ``--redis URL``: a free port on 127.0.0.1, a
temporary directory, no persistence (the state is the live sessions'; brands need a managed Redis with
persistence in production), stopped with the command."""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time

from ...errors import ConfigError

START_TIMEOUT_S = 10.0


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


class LocalRedis:
    def __init__(self, binary: str | None = None) -> None:
        exe = binary or shutil.which("redis-server") or "/usr/bin/redis-server"
        if not shutil.which(exe):
            raise ConfigError("redis-server is not installed: install it (Debian: apt-get install redis-server) "
                              "or pass --redis redis://HOST:PORT")
        self.dir = tempfile.TemporaryDirectory(prefix="facestage-redis-")
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc = subprocess.Popen(
            [exe, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", self.dir.name, "--save", "",
             "--appendonly", "no", "--protected-mode", "yes", "--loglevel", "warning"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self._wait()

    def _wait(self) -> None:
        import redis

        deadline = time.monotonic() + START_TIMEOUT_S
        client = redis.Redis.from_url(self.url)
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise ConfigError(f"redis-server exited at start (code {self.proc.returncode})")
            try:
                if client.ping():
                    client.close()
                    return
            except redis.ConnectionError:
                time.sleep(0.05)
        self.stop()
        raise ConfigError(f"redis-server did not answer on port {self.port} within {START_TIMEOUT_S:g} s")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.dir.cleanup()

    def __enter__(self) -> LocalRedis:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
