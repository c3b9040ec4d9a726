"""Load test for the Byline chat (not collected by pytest): N concurrent sessions for a bounded time.

    python tests/bench/load_chat.py                      # 50 sessions, 120 s, extractive answers
    python tests/bench/load_chat.py --sessions 10 --duration 30 --json

It ingests data/ (and tests/fixtures/corpus when present) into a temp data folder, starts
``python -m ui.cli chat --port FREE --data-dir D --generator extractive`` on 127.0.0.1, then runs
one ``gradio_client.Client`` per session in its own thread; each session asks questions through
the app's ``/ask`` endpoint one after another (passing its earlier turns as history) until the
time is up. Reports answers/s, p50/p95/max latency and errors. Everything stays on loopback.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
HOST = "127.0.0.1"
QUESTIONS = [
    "Who is Ali al-Daffayi and what did he announce?",
    "What are the Iran-backed militias in Iraq planning?",
    "Why did Iraq complain to the UN Security Council?",
    "Where have smaller protests already taken place?",
    "What did the militias threaten to do to American forces?",
    "What did the Riverton council decide about the budget?",
    "What happened at the port during the storm in Saltmere?",
    "Which product did NovaLink recall and why?",
    "Who is the new coach of Castlebridge Rovers?",
    "What is the capital of Australia?",  # not in the archive: a refusal is a valid answer too
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def env_for(data_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BYLINE_")}
    env.update(HF_HUB_OFFLINE="1", GRADIO_ANALYTICS_ENABLED="False", ANONYMIZED_TELEMETRY="False", ORT_DISABLE_TELEMETRY="1",
               NO_PROXY="127.0.0.1,localhost", no_proxy="127.0.0.1,localhost", BYLINE_DATA_DIR=str(data_dir))
    for k in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        env.pop(k, None)
    return env


def ingest(data_dir: Path, timeout: float) -> None:
    sources = [str(REPO / "data")]
    if (REPO / "tests" / "fixtures" / "corpus").is_dir():
        sources.append(str(REPO / "tests" / "fixtures" / "corpus"))
    r = subprocess.run([sys.executable, "-m", "ui.cli", "ingest", *sources, "--data-dir", str(data_dir), "--json"],
                       capture_output=True, text=True, timeout=timeout, cwd=REPO, env=env_for(data_dir))
    if r.returncode not in (0, 2):
        raise SystemExit(f"ingest failed ({r.returncode}): {r.stderr[-2000:]}")
    rep = json.loads(r.stdout)
    print(f"ingested: {rep['added']} added, {rep['unchanged']} unchanged, {rep['failed']} failed, {rep['chunks_embedded']} chunks", flush=True)


def wait_http(url: str, proc: subprocess.Popen, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"chat exited early with {proc.returncode}")
        try:
            with urllib.request.urlopen(url + "config", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.5)
    raise SystemExit(f"chat not up at {url} after {timeout:.0f} s")


class Results:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.latencies: list[float] = []
        self.errors: list[str] = []
        self.refusals = 0
        self.sessions_started = 0

    def ok(self, seconds: float, refused: bool) -> None:
        with self.lock:
            self.latencies.append(seconds)
            self.refusals += int(refused)

    def err(self, msg: str) -> None:
        with self.lock:
            self.errors.append(msg[:300])


def session(idx: int, url: str, deadline: float, res: Results, max_turns: int, request_timeout: float,
            generator: str = "extractive") -> None:
    from gradio_client import Client

    rng = random.Random(idx)
    try:
        client = Client(url, verbose=False, httpx_kwargs={"timeout": request_timeout, "trust_env": False})
    except Exception as exc:  # noqa: BLE001
        res.err(f"session {idx}: connect: {type(exc).__name__}: {exc}")
        return
    with res.lock:
        res.sessions_started += 1
    history: list[dict] = []
    turns = 0
    while time.monotonic() < deadline and turns < max_turns:
        q = rng.choice(QUESTIONS)
        t = time.perf_counter()
        try:
            job = client.submit(q, [], "", "", generator, history[-4:], api_name="/ask")
            remaining = max(1.0, deadline - time.monotonic() + request_timeout)
            out = job.result(timeout=min(request_timeout, remaining))
        except Exception as exc:  # noqa: BLE001
            if time.monotonic() >= deadline:
                break  # cut off by the end of the run, not an error
            res.err(f"session {idx}: {type(exc).__name__}: {exc}")
            turns += 1
            continue
        dt = time.perf_counter() - t
        text = (out or {}).get("text", "") if isinstance(out, dict) else str(out)
        if not text:
            res.err(f"session {idx}: empty answer")
        else:
            res.ok(dt, bool((out or {}).get("refused")) if isinstance(out, dict) else False)
        history += [{"role": "user", "content": q}, {"role": "assistant", "content": text}]
        turns += 1
    try:
        client.close()
    except Exception:  # noqa: BLE001
        pass


def pct(xs: list[float], p: float) -> float:
    if not xs:
        return float("nan")
    xs = sorted(xs)
    k = min(len(xs) - 1, max(0, round(p / 100 * (len(xs) - 1))))
    return xs[k]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sessions", type=int, default=50, help="concurrent chat sessions (threads)")
    ap.add_argument("--generator", default="extractive", choices=["extractive", "local", "openai"], help="generator every request asks for")
    ap.add_argument("--duration", type=float, default=120.0, help="seconds of load")
    ap.add_argument("--max-turns", type=int, default=1000, help="questions per session at most")
    ap.add_argument("--request-timeout", type=float, default=120.0, help="seconds one answer may take")
    ap.add_argument("--data-dir", type=Path, help="reuse this data folder (default: a fresh temp one)")
    ap.add_argument("--url", help="load an already running chat instead of starting one (must be loopback)")
    ap.add_argument("--start-timeout", type=float, default=240.0)
    ap.add_argument("--no-warmup", dest="warmup", action="store_false", help="count the first (cold) answer too")
    ap.add_argument("--json", action="store_true", help="print the result as JSON")
    args = ap.parse_args(argv)
    if args.url and not args.url.startswith((f"http://{HOST}:", "http://localhost:")):
        ap.error("--url must be on 127.0.0.1 / localhost")
    if not (REPO / "ui" / "app.py").exists() and not args.url:
        print("ui/app.py is missing: nothing to load-test yet", file=sys.stderr)
        return 2

    tmp = tempfile.TemporaryDirectory(prefix="byline-load-")
    data_dir = args.data_dir or Path(tmp.name) / "byline"
    proc = None
    try:
        if args.url:
            url = args.url.rstrip("/") + "/"
        else:
            ingest(data_dir, timeout=args.start_timeout * 2)
            port = free_port()
            url = f"http://{HOST}:{port}/"
            log = open(Path(tmp.name) / "chat.log", "wb")
            proc = subprocess.Popen([sys.executable, "-m", "ui.cli", "chat", "--port", str(port), "--data-dir", str(data_dir),
                                     "--generator", args.generator], stdout=log, stderr=subprocess.STDOUT, cwd=REPO,
                                    env=env_for(data_dir), start_new_session=True)
            t = time.monotonic()
            wait_http(url, proc, args.start_timeout)
            print(f"chat up at {url} in {time.monotonic() - t:.1f} s", flush=True)

        if args.warmup:
            # the first answer loads the embedder and builds BM25 in the chat process: keep it out of the numbers
            from gradio_client import Client

            t = time.perf_counter()
            c = Client(url, verbose=False, httpx_kwargs={"timeout": args.start_timeout, "trust_env": False})
            c.predict(QUESTIONS[0], [], "", "", args.generator, [], api_name="/ask")
            c.close()
            print(f"warm-up answer in {time.perf_counter() - t:.1f} s", flush=True)

        res = Results()
        t0 = time.monotonic()
        deadline = t0 + args.duration
        threads = [threading.Thread(target=session, args=(i, url, deadline, res, args.max_turns, args.request_timeout, args.generator), daemon=True)
                   for i in range(args.sessions)]
        for th in threads:
            th.start()
        for th in threads:
            th.join(timeout=max(0.1, deadline - time.monotonic() + args.request_timeout + 10))
        elapsed = time.monotonic() - t0
        lat = res.latencies
        out = {
            "sessions": args.sessions, "sessions_connected": res.sessions_started, "duration_s": round(elapsed, 1),
            "answers": len(lat), "answers_per_s": round(len(lat) / elapsed, 3) if elapsed else 0.0,
            "p50_s": round(pct(lat, 50), 3), "p95_s": round(pct(lat, 95), 3), "max_s": round(max(lat), 3) if lat else None,
            "mean_s": round(statistics.fmean(lat), 3) if lat else None, "refusals": res.refusals,
            "errors": len(res.errors), "error_samples": res.errors[:5], "threads_still_running": sum(th.is_alive() for th in threads),
        }
        if args.json:
            print(json.dumps(out, indent=2))
        else:
            print(f"{out['sessions']} sessions ({out['sessions_connected']} connected), {out['duration_s']} s: "
                  f"{out['answers']} answers, {out['answers_per_s']} answers/s, p50 {out['p50_s']} s, p95 {out['p95_s']} s, "
                  f"max {out['max_s']} s, {out['refusals']} refusals, {out['errors']} errors")
            for e in out["error_samples"]:
                print("  error:", e)
        return 0 if not res.errors else 1
    finally:
        if proc is not None and proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)  # our own child's process group
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
        tmp.cleanup()


if __name__ == "__main__":
    raise SystemExit(main())
