"""Byline never reaches beyond this machine: ingest, ask and the chat app make zero non-loopback connections.

A guard replaces ``socket.socket.connect``/``connect_ex``, ``socket.create_connection`` and
``socket.getaddrinfo``: any attempt to reach (or even resolve) a host other than 127.0.0.1 / ::1 /
localhost is recorded and refused. The same guard runs in-process and, through a ``sitecustomize``
on ``PYTHONPATH``, inside ``byline ingest`` / ``byline ask`` subprocesses. (Connections opened
from native code that bypasses Python's socket module are out of its sight.)
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from rag.config import Settings
from tests.conftest import DATA_DIR

REPO = Path(__file__).resolve().parent.parent
QUESTION = "Who is Ali al-Daffayi and what did he announce?"

# The guard's source: used in-process (exec) and written as sitecustomize.py for subprocesses.
GUARD_SRC = textwrap.dedent('''
    import ipaddress as _ip, json as _json, os as _os, socket as _socket, threading as _th, traceback as _tb

    ATTEMPTS = []
    _LOCK = _th.Lock()
    _LOG = _os.environ.get("NETGUARD_LOG")
    _LOCAL_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost", ""}

    def _is_local(host):
        if host is None:
            return True
        if isinstance(host, bytes):
            host = host.decode("ascii", "replace")
        host = str(host).strip("[]").split("%")[0].lower()
        if host in _LOCAL_NAMES:
            return True
        try:
            return _ip.ip_address(host).is_loopback or _ip.ip_address(host).is_unspecified
        except ValueError:
            return False

    def _record(kind, target):
        entry = {"kind": kind, "target": repr(target)[:200], "stack": "".join(_tb.format_stack(limit=8))[-1500:]}
        with _LOCK:
            ATTEMPTS.append(entry)
            if _LOG:
                with open(_LOG, "a") as fh:
                    fh.write(_json.dumps(entry) + "\\n")
        raise OSError(101, f"network guard: non-loopback {kind} to {target!r} refused")

    def _check_addr(kind, address):
        if isinstance(address, (tuple, list)) and address and not _is_local(address[0]):
            _record(kind, address)

    _orig_connect = _socket.socket.connect
    _orig_connect_ex = _socket.socket.connect_ex
    _orig_create_connection = _socket.create_connection
    _orig_getaddrinfo = _socket.getaddrinfo

    def _connect(self, address):
        if self.family in (_socket.AF_INET, _socket.AF_INET6):
            _check_addr("connect", address)
        return _orig_connect(self, address)

    def _connect_ex(self, address):
        if self.family in (_socket.AF_INET, _socket.AF_INET6):
            _check_addr("connect", address)
        return _orig_connect_ex(self, address)

    def _create_connection(address, *args, **kwargs):
        _check_addr("create_connection", address)
        return _orig_create_connection(address, *args, **kwargs)

    def _getaddrinfo(host, *args, **kwargs):
        if not _is_local(host):
            _record("getaddrinfo", host)
        return _orig_getaddrinfo(host, *args, **kwargs)

    def install():
        _socket.socket.connect = _connect
        _socket.socket.connect_ex = _connect_ex
        _socket.create_connection = _create_connection
        _socket.getaddrinfo = _getaddrinfo

    def uninstall():
        _socket.socket.connect = _orig_connect
        _socket.socket.connect_ex = _orig_connect_ex
        _socket.create_connection = _orig_create_connection
        _socket.getaddrinfo = _orig_getaddrinfo
''')


def _guard_module() -> dict:
    ns: dict = {"__name__": "netguard"}
    exec(compile(GUARD_SRC, "netguard", "exec"), ns)  # noqa: S102 - our own source, above
    return ns


@pytest.fixture
def guard():
    g = _guard_module()
    g["install"]()
    try:
        yield g
    finally:
        g["uninstall"]()


def test_guard_catches_outbound_and_allows_loopback(guard) -> None:
    import socket

    with pytest.raises(OSError, match="network guard"):
        socket.create_connection(("192.0.2.1", 80), timeout=1)
    with pytest.raises(OSError, match="network guard"):
        socket.getaddrinfo("example.com", 443)
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    with pytest.raises(OSError, match="network guard"):
        s.connect(("198.51.100.7", 443))
    s.close()
    assert len(guard["ATTEMPTS"]) == 3
    guard["ATTEMPTS"].clear()
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    c = socket.create_connection(srv.getsockname(), timeout=2)
    c.close()
    srv.close()
    socket.getaddrinfo("localhost", 80)
    assert guard["ATTEMPTS"] == []


def test_ingest_ask_and_app_make_no_outbound_connections(guard, tmp_path: Path, embedder) -> None:
    from ingest.pipeline import Ingestor
    from rag.store import forget_clients

    forget_clients()
    settings = Settings(data_dir=tmp_path / "byline", generator="extractive")
    report = Ingestor(settings, embedder=embedder).ingest([str(DATA_DIR)])
    assert report.added == 1 and report.ok

    from rag import ask

    answer = ask(QUESTION, settings=settings)
    assert answer.text
    steps = ["ingest", "ask"]

    try:
        from ui.app import build_app, launch
    except ImportError:
        build_app = launch = None  # the chat is not in this build
    if build_app is not None:
        demo = build_app(settings)
        assert demo is not None
        steps.append("build_app")
        # and serve it on loopback for one real request
        import httpx

        app = launch(settings.model_copy(update={"port": 0}), block=False, quiet=True)
        try:
            url = app.local_url or ""
            assert url.startswith("http://127.0.0.1:")
            r = httpx.get(url + "config", timeout=30, trust_env=False)
            assert r.status_code == 200
            steps.append("launch")
        finally:
            app.close()
    forget_clients()
    attempts = guard["ATTEMPTS"]
    print(f"network guard, in-process ({' + '.join(steps)}): {len(attempts)} non-loopback attempts")
    assert attempts == [], "\n\n".join(f"{a['kind']} {a['target']}\n{a['stack']}" for a in attempts)


def test_cli_ingest_and_ask_make_no_outbound_connections(tmp_path: Path) -> None:
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(GUARD_SRC + "\ninstall()\n", encoding="utf-8")
    log = tmp_path / "netguard.jsonl"
    env = {k: v for k, v in os.environ.items() if not k.startswith("BYLINE_")}
    env.update(PYTHONPATH=os.pathsep.join([str(site), str(REPO)]), NETGUARD_LOG=str(log),
               BYLINE_DATA_DIR=str(tmp_path / "byline"), BYLINE_GENERATOR="extractive")

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "ui.cli", *args], capture_output=True, text=True, timeout=300, cwd=REPO, env=env)

    # the guard is really active in the child
    probe = subprocess.run([sys.executable, "-c", "import socket; socket.getaddrinfo('example.org', 80)"],
                           capture_output=True, text=True, timeout=60, env=env)
    assert probe.returncode != 0 and "network guard" in probe.stderr
    assert log.exists()
    log.unlink()

    r = cli("ingest", str(DATA_DIR), "--json")
    assert r.returncode == 0, r.stderr[-3000:]
    assert json.loads(r.stdout)["added"] == 1
    r = cli("ask", QUESTION, "--json")
    assert r.returncode == 0, r.stderr[-3000:]
    assert json.loads(r.stdout)["text"]
    attempts = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
    print(f"network guard, subprocess (ingest + ask): {len(attempts)} non-loopback attempts")
    assert attempts == [], "\n\n".join(f"{a['kind']} {a['target']}\n{a['stack']}" for a in attempts)
