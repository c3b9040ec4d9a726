"""A real Chroma server for tests: ``chroma run`` on a temp folder, loopback only, bounded waits.

    with ChromaServer(tmp_path / "srv") as srv:
        settings = Settings(data_dir=..., chroma_url=srv.url)

or the ``chroma_server`` fixture in tests that import it (``from tests.chroma_server import chroma_server``).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Iterator

import pytest

HOST = "127.0.0.1"
START_TIMEOUT_S = 60.0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def chroma_executable() -> str | None:
    """The ``chroma`` CLI of the running interpreter's environment (never one from elsewhere on PATH)."""
    cand = Path(sys.executable).parent / "chroma"
    if cand.exists():
        return str(cand)
    return None


class ChromaServer:
    """``chroma run --path PATH --host 127.0.0.1 --port PORT`` as a subprocess; restartable on the same path and port."""

    def __init__(self, path: Path, port: int | None = None, log_path: Path | None = None) -> None:
        self.path = Path(path)
        self.port = port or free_port()
        self.log_path = log_path or self.path.parent / f"chroma-{self.port}.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self._log = None

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def heartbeat_ok(self, timeout: float = 1.0) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/api/v2/heartbeat", timeout=timeout) as r:  # loopback only
                return r.status == 200
        except (urllib.error.URLError, OSError, ValueError):
            return False

    def start(self, timeout: float = START_TIMEOUT_S) -> "ChromaServer":
        exe = chroma_executable()
        if exe is None:
            pytest.skip(f"no `chroma` CLI next to {sys.executable}")
        self.path.mkdir(parents=True, exist_ok=True)
        self._log = open(self.log_path, "ab")
        env = dict(os.environ, ANONYMIZED_TELEMETRY="False", CHROMA_TELEMETRY="False")
        self.proc = subprocess.Popen(
            [exe, "run", "--path", str(self.path), "--host", HOST, "--port", str(self.port)],
            stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env, start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"chroma server exited with {self.proc.returncode}; log: {self.tail()}")
            if self.heartbeat_ok():
                return self
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"chroma server not ready after {timeout:.0f} s; log: {self.tail()}")

    def stop(self, timeout: float = 15.0) -> None:
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=timeout)
        if self._log is not None:
            self._log.close()
            self._log = None
        # the port must be free again before a restart on it (bounded)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.heartbeat_ok(timeout=0.3):
            time.sleep(0.1)

    def restart(self) -> "ChromaServer":
        self.stop()
        return self.start()

    def tail(self, n: int = 2000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-n:]
        except OSError:
            return "(no log)"

    def __enter__(self) -> "ChromaServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


@pytest.fixture
def chroma_server(tmp_path: Path) -> Iterator[ChromaServer]:
    if chroma_executable() is None or shutil.which("true") is None:
        pytest.skip("chroma CLI not installed")
    srv = ChromaServer(tmp_path / "chroma-server")
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()
