"""Start ``facestage serve --replicas N`` in a child process (tests, benchmarks); the port is read from its
banner. ``replicas()`` reads GET /healthz; ``kill_replica(pid)`` is the failover drill."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from ..process import ServerProcess

START_TIMEOUT_S = 120.0  # Ray on two busy cores: ~10 s typical, much more under load


class ClusterProcess(ServerProcess):
    def __init__(self, db: str | Path, replicas: int = 2, extra: tuple[str, ...] = (),
                 timeout: float = START_TIMEOUT_S, warm: bool = False, ingress: str = "auto") -> None:
        cmd = [sys.executable, "-m", "facestage", "serve", "--port", "0", "--db", str(db),
               "--replicas", str(replicas), "--ingress", ingress, *extra]
        if not warm:  # tests want a quick start; the bench measures warm replicas (the production default)
            cmd.append("--no-warmup")
        self.log = open(Path(db).parent / "cluster.log", "w")  # noqa: SIM115 - closed in stop()
        self.ingress = ""
        self.haproxy_dir = ""  # Serve writes <dir>/<node id>/haproxy.cfg

        def line(text: str) -> None:
            hap = re.match(r"haproxy config under (\S+)", text)
            if hap:
                self.haproxy_dir = hap.group(1)

        # its own process group: stop() can take Ray's and Redis's children down with the launcher
        m = self._launch(cmd, r"cluster on http://127\.0\.0\.1:(\d+)", timeout, stderr=self.log,
                         new_session=True, on_line=line)
        if not self.port or m is None:
            self.stop()
            raise RuntimeError(f"facestage serve --replicas did not start; see {self.log.name}")
        ingress_word = re.search(r"ingress (\w+)", m.string)
        self.ingress = ingress_word.group(1) if ingress_word else ""

    def replicas(self) -> list[dict]:
        return self.health()["replicas"]

    def answering(self) -> int:
        """The pid of the replica that answers one request through the front door."""
        with urllib.request.urlopen(self.url + "/healthz", timeout=30) as r:
            return int(r.headers["X-Facestage-Replica"])

    def wait_replicas(self, n: int, without: int | None = None, timeout: float = 60.0) -> list[dict]:
        """Wait until ``n`` replicas announce themselves (and ``without`` — a killed pid — is gone) and the
        ingress routes to every one of them (HAProxy learns of a new replica a moment after it announces)."""
        deadline = time.monotonic() + timeout
        while True:
            reps = self.replicas()
            if len(reps) == n and all(r["pid"] != without for r in reps):
                pids = {r["pid"] for r in reps}
                seen = {self.answering() for _ in range(4 * n)}  # round robin without a session id
                if pids <= seen:
                    return reps
            if time.monotonic() > deadline:
                raise TimeoutError(f"replicas: {reps}")
            time.sleep(0.25)

    @staticmethod
    def kill_replica(pid: int) -> None:
        os.kill(pid, signal.SIGKILL)

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)  # SIGTERM: the launcher shuts Serve, Ray and Redis down
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self.log.close()

    def __enter__(self) -> ClusterProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
