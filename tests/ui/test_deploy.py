"""The README's compose layout, run on one host without Docker: each service's own command and environment
from the README (a real `chroma run`, the one `byline watch` writer, `byline serve`), with its host names,
ports, folders and feed replaced by loopback ones, so the document cannot drift from what works."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.chroma_server import chroma_executable, free_port
from tests.conftest import REPO
from tests.ingest.test_watch import STORIES, FeedSite


def compose_services() -> dict[str, Any]:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    block = re.search(r"A compose file for that layout.*?```yaml\n(.*?)```", readme, re.S)
    assert block, "README: the compose file for the several-machines layout is missing"
    return yaml.safe_load(block.group(1))["services"]


def command(argv: list[str]) -> list[str]:
    """The service's command as this checkout runs it (the image's `byline` is this repository's CLI)."""
    if argv[0] == "byline":
        return [sys.executable, "-m", "ui.cli", *argv[1:]]
    if argv[0] == "chroma":
        return [chroma_executable() or "chroma", *argv[1:]]
    raise AssertionError(f"unexpected command in the compose file: {argv}")


def environment(service: dict[str, Any], chroma_url: str, data_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BYLINE_")}
    for k, v in (service.get("environment") or {}).items():
        env[k] = {"BYLINE_CHROMA_URL": chroma_url, "BYLINE_DATA_DIR": str(data_dir)}.get(k, str(v))
    return env


def wait_until(check: Any, what: str, procs: list[subprocess.Popen], timeout: float = 120) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        try:
            got = check()
            if got:
                return got
        except httpx.TransportError:
            pass
        for p in procs:
            assert p.poll() is None, f"{p.args[:4]} exited while waiting for {what}"
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.5)


def test_the_readme_compose_layout_runs_on_one_host(tmp_path: Path) -> None:
    if chroma_executable() is None:
        pytest.fail("the `chroma` command is missing: it comes with the chromadb package")
    services = compose_services()
    assert set(services) == {"chroma", "ingest", "api"}
    site = FeedSite()
    site.set_feed("/feed.xml", ["1", "2", "3"])
    port = free_port()
    chroma_url = f"http://127.0.0.1:{port}"
    procs: list[subprocess.Popen] = []
    try:
        # chroma: the README's command, its folder and address made local
        argv = [{"/data": str(tmp_path / "chroma-data"), "0.0.0.0": "127.0.0.1", "8000": str(port)}.get(a, a) for a in services["chroma"]["command"]]
        procs.append(subprocess.Popen(command(argv), cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        wait_until(lambda: httpx.get(f"{chroma_url}/api/v2/heartbeat", timeout=5).status_code == 200, "chroma run", procs)

        # ingest: the one writer, watching a loopback feed instead of example.org's
        argv = [site.url("/feed.xml") if a.startswith("https://") else a for a in services["ingest"]["command"]]
        ingest = subprocess.Popen(command(argv), cwd=REPO, env=environment(services["ingest"], chroma_url, tmp_path / "ingest-data"),
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        procs.append(ingest)
        line = ingest.stdout.readline()
        assert line.strip().endswith(": 3 new, 0 changed"), (line, ingest.poll())

        # api: chat, API and MCP on one port, reading the same Chroma with a keyword file of its own
        api_port = free_port()
        argv = [{"0.0.0.0": "127.0.0.1", "7860": str(api_port)}.get(a, a) for a in services["api"]["command"]]
        env = environment(services["api"], chroma_url, tmp_path / "api-data")
        env["BYLINE_GENERATOR"] = "extractive"  # the quotes generator: no 1.1 GB model to load in a test
        procs.append(subprocess.Popen(command(argv), cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True))
        api = f"http://127.0.0.1:{api_port}"
        wait_until(lambda: httpx.get(f"{api}/v1/health", timeout=5).status_code == 200, "byline serve", procs)
        r = httpx.post(f"{api}/v1/ask", json={"question": "Why was the Saltmere ferry stopped, and when did it resume?"}, timeout=120)
        assert r.status_code == 200, r.text
        a = r.json()
        assert not a["refused"] and a["citations"][0]["title"] == STORIES["1"][0], a
        assert "storm repairs" in a["text"]
    finally:
        for p in reversed(procs):
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
        site.close()
