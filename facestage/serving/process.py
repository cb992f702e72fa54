"""Start ``facestage serve`` in a child process (benchmarks, tests, examples); the port is read from its banner."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

BANNER = r"http://127\.0\.0\.1:(\d+)"


class ServerProcess:
    def __init__(self, db: str | Path, port: int = 0, timeout: float = 60.0, warm: bool = False) -> None:
        cmd = [sys.executable, "-m", "facestage", "serve", "--port", str(port), "--db", str(db)]
        if not warm:  # measurements want a quiet process: nothing loading in the background
            cmd.append("--no-warmup")
        self._launch(cmd, BANNER, timeout, stderr=subprocess.DEVNULL)
        if not self.port:
            self.stop(signal.SIGKILL)
            raise RuntimeError("facestage serve did not start (run it by hand to see why)")

    def _launch(self, cmd: list[str], banner: str, timeout: float, stderr: Any, new_session: bool = False,
                on_line: Callable[[str], None] | None = None) -> re.Match | None:
        """Start ``cmd`` and read its stdout until ``banner`` (a regex with the port as group 1) appears
        (each line before it goes to ``on_line``); ``self.port`` stays 0 when it did not within ``timeout``
        or the process ended. Returns the banner's match."""
        env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=stderr, text=True, env=env,
                                     start_new_session=new_session)
        self.port = 0
        deadline = time.monotonic() + timeout
        assert self.proc.stdout is not None
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            m = re.search(banner, line)
            if m:
                self.port = int(m.group(1))
                break
            if on_line is not None:
                on_line(line)
            if not line and self.proc.poll() is not None:
                break
        else:
            m = None
        self.url = f"http://127.0.0.1:{self.port}"
        self.ws_url = f"ws://127.0.0.1:{self.port}/v1/ws"
        return m

    @property
    def pid(self) -> int:
        return self.proc.pid

    def health(self) -> dict:
        with urllib.request.urlopen(self.url + "/healthz", timeout=30) as r:
            return json.loads(r.read())

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        if self.proc.stdout is not None:
            self.proc.stdout.close()

    def __enter__(self) -> ServerProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
