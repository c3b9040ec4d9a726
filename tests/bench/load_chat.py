"""Load test for the Byline chat or its API (not collected by pytest): N concurrent clients for a bounded time.

    python tests/bench/load_chat.py                      # the chat: 50 sessions, 120 s, extractive answers
    python tests/bench/load_chat.py --sessions 10 --duration 30 --json
    python tests/bench/load_chat.py --target api         # the API: 50 clients, 120 s, streamed byline-quotes
    python tests/bench/load_chat.py --target api --generator local --sessions 3 --duration 120

It ingests data/ (and tests/fixtures/corpus when present) into a temp data folder and starts a server
on a free 127.0.0.1 port. ``--target chat``: ``python -m ui.cli chat --generator G``, one
``gradio_client.Client`` per session in its own thread, each asking through the app's ``/ask`` endpoint.
``--target api``: ``python -m ui.cli serve --no-chat --generator G``, one ``httpx.AsyncClient`` per
client posting streamed ``/v1/chat/completions`` (model ``byline-quotes`` for the extractive generator,
``byline-local`` for the local model). Either way each client asks one question after another (passing
its earlier turns as history) until the time is up; an answer under way then finishes. Reports answers/s,
p50/p95/max latency and errors, and for the API the time to the first chunk (the sources) and to the
first text. Everything stays on loopback.
"""

from __future__ import annotations

import argparse
import asyncio
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
from collections.abc import Callable
from pathlib import Path

import httpx

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


# The one model the answers are written with, by generator (ui.service.MODEL_IDS).
API_MODELS = {"extractive": "byline-quotes", "local": "byline-local", "openai": "byline-openai"}
KEPT_SETTINGS = ("BYLINE_MODEL_CACHE_DIR", "BYLINE_LLM_THREADS", "BYLINE_LLM_RUNTIME")  # where the joined model is, how it runs; not the archive


def env_for(data_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BYLINE_") or k in KEPT_SETTINGS}
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


def wait_http(probe: str, proc: subprocess.Popen, timeout: float, log: Path, ready: Callable[[bytes], bool] = lambda body: True) -> None:
    """Until ``probe`` answers 200 with a body that ``ready`` accepts."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited early with {proc.returncode}:\n{log.read_text(errors='replace')[-2000:]}")
        try:
            with urllib.request.urlopen(probe, timeout=2) as r:
                if r.status == 200 and ready(r.read()):
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"server not up at {probe} after {timeout:.0f} s")


class Results:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.latencies: list[float] = []
        self.errors: list[str] = []
        self.first_chunk: list[float] = []  # API: the first SSE chunk (the sources, once retrieval is done)
        self.first_text: list[float] = []  # API: the first chunk carrying answer text
        self.refusals = 0
        self.rate_limited = 0
        self.sessions_started = 0

    def ok(self, seconds: float, refused: bool, first_chunk: float | None = None, first_text: float | None = None) -> None:
        with self.lock:
            self.latencies.append(seconds)
            self.refusals += int(refused)
            if first_chunk is not None:
                self.first_chunk.append(first_chunk)
            if first_text is not None:
                self.first_text.append(first_text)

    def err(self, msg: str) -> None:
        with self.lock:
            self.errors.append(msg[:300])


def session(idx: int, url: str, deadline: float, res: Results, max_turns: int, request_timeout: float, seed: int,
            generator: str = "extractive") -> None:
    from gradio_client import Client

    rng = random.Random(idx + 1000 * seed)
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


class StreamFailed(Exception):
    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


async def stream_answer(http: httpx.AsyncClient, url: str, model: str, messages: list[dict]) -> dict:
    """One streamed chat completion, as an OpenAI client reads it: its timings, text and refusal flag."""
    t = time.perf_counter()
    first_chunk = first_text = None
    text: list[str] = []
    refused = finished = False
    body = {"model": model, "stream": True, "messages": messages}
    async with http.stream("POST", url + "v1/chat/completions", json=body) as r:
        if r.status_code != 200:
            raise StreamFailed(f"HTTP {r.status_code}: {(await r.aread()).decode(errors='replace')[:200]}", r.status_code)
        async for line in r.aiter_lines():
            if not line.startswith("data: "):
                continue  # blank separators and keep-alive comments
            if line == "data: [DONE]":
                finished = True
                break
            event = json.loads(line[6:])
            if "error" in event:
                raise StreamFailed(f"error in the stream: {event['error'].get('message')}")
            at = time.perf_counter() - t
            first_chunk = at if first_chunk is None else first_chunk
            for choice in event.get("choices") or []:
                if (choice.get("delta") or {}).get("content"):
                    first_text = at if first_text is None else first_text
                    text.append(choice["delta"]["content"])
            if "byline" in event:
                refused = bool(event["byline"].get("refused"))
    if not finished:
        raise StreamFailed("the stream ended without [DONE]")
    return {"seconds": time.perf_counter() - t, "first_chunk": first_chunk, "first_text": first_text,
            "text": "".join(text), "refused": refused}


async def api_client(idx: int, url: str, model: str, deadline: float, res: Results, max_turns: int, request_timeout: float,
                     seed: int) -> None:
    rng = random.Random(idx + 1000 * seed)
    history: list[dict] = []
    turns = 0
    async with httpx.AsyncClient(timeout=request_timeout, trust_env=False) as http:
        with res.lock:
            res.sessions_started += 1
        while time.monotonic() < deadline and turns < max_turns:
            q = rng.choice(QUESTIONS)
            turns += 1
            try:
                out = await asyncio.wait_for(stream_answer(http, url, model, [*history[-4:], {"role": "user", "content": q}]),
                                             request_timeout)
            except Exception as exc:  # noqa: BLE001 - every failure is counted and sampled, the client goes on
                res.err(f"client {idx}: {type(exc).__name__}: {exc}")
                if getattr(exc, "status", None) == 429:
                    with res.lock:
                        res.rate_limited += 1
                continue
            if not out["text"]:
                res.err(f"client {idx}: empty answer")
                continue
            res.ok(out["seconds"], out["refused"], out["first_chunk"], out["first_text"])
            history += [{"role": "user", "content": q}, {"role": "assistant", "content": out["text"]}]


async def api_load(url: str, model: str, clients: int, deadline: float, res: Results, max_turns: int, request_timeout: float,
                   seed: int) -> None:
    await asyncio.gather(*(api_client(i, url, model, deadline, res, max_turns, request_timeout, seed) for i in range(clients)))


def pct(xs: list[float], p: float) -> float:
    if not xs:
        return float("nan")
    xs = sorted(xs)
    k = min(len(xs) - 1, max(0, round(p / 100 * (len(xs) - 1))))
    return xs[k]


def run_chat(args: argparse.Namespace, url: str, res: Results, deadline: float) -> list[threading.Thread]:
    threads = [threading.Thread(target=session, args=(i, url, deadline, res, args.max_turns, args.request_timeout, args.seed, args.generator), daemon=True)
               for i in range(args.sessions)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(timeout=max(0.1, deadline - time.monotonic() + args.request_timeout + 10))
    return threads


def warm_up(args: argparse.Namespace, url: str) -> None:
    """The first answer loads the embedder and builds BM25 in the server: keep it out of the numbers."""
    t = time.perf_counter()
    if args.target == "api":
        async def one() -> None:
            async with httpx.AsyncClient(timeout=args.start_timeout, trust_env=False) as http:
                await stream_answer(http, url, API_MODELS[args.generator], [{"role": "user", "content": QUESTIONS[0]}])

        asyncio.run(one())
    else:
        from gradio_client import Client

        c = Client(url, verbose=False, httpx_kwargs={"timeout": args.start_timeout, "trust_env": False})
        c.predict(QUESTIONS[0], [], "", "", args.generator, [], api_name="/ask")
        c.close()
    print(f"warm-up answer in {time.perf_counter() - t:.1f} s", flush=True)


def start_server(args: argparse.Namespace, data_dir: Path, folder: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    url = f"http://{HOST}:{port}/"
    command = ["chat"] if args.target == "chat" else ["serve", "--no-chat"]
    log = folder / "server.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "ui.cli", *command, "--port", str(port), "--data-dir", str(data_dir),
                                 "--generator", args.generator], stdout=out, stderr=subprocess.STDOUT, cwd=REPO,
                                env=env_for(data_dir), start_new_session=True)
    t = time.monotonic()
    wait_http(url + ("config" if args.target == "chat" else "v1/health"), proc, args.start_timeout, log)
    print(f"{' '.join(command)} up at {url} in {time.monotonic() - t:.1f} s", flush=True)
    if args.after_ready:  # the server's warm-up has loaded its models
        wait_http(url + "v1/health", proc, t + args.start_timeout - time.monotonic(), log, lambda body: bool(json.loads(body).get("ready")))
        print(f"ready (models loaded) in {time.monotonic() - t:.1f} s", flush=True)
    return proc, url


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--target", default="chat", choices=["chat", "api"],
                    help="chat: the Gradio chat's /ask (byline chat); api: streamed /v1/chat/completions (byline serve)")
    ap.add_argument("--sessions", "--clients", dest="sessions", type=int, default=50, help="concurrent clients")
    ap.add_argument("--generator", default="extractive", choices=["extractive", "local", "openai"], help="generator every request asks for")
    ap.add_argument("--duration", type=float, default=120.0, help="seconds of load (no question is asked after it)")
    ap.add_argument("--max-turns", type=int, default=1000, help="questions per client at most")
    ap.add_argument("--request-timeout", type=float, default=120.0, help="seconds one answer may take")
    ap.add_argument("--data-dir", type=Path, help="reuse this data folder (default: a fresh temp one)")
    ap.add_argument("--url", help="load an already running server instead of starting one (must be loopback)")
    ap.add_argument("--start-timeout", type=float, default=240.0)
    ap.add_argument("--no-warmup", dest="warmup", action="store_false", help="count the first (cold) answer too")
    ap.add_argument("--after-ready", action="store_true",
                    help="api: ask the first question once /v1/health says the models are loaded, not as soon as it answers")
    ap.add_argument("--json", action="store_true", help="print the result as JSON")
    ap.add_argument("--seed", type=int, default=0, help="which questions each client draws (0: the same as every earlier run)")
    args = ap.parse_args(argv)
    if args.url and not args.url.startswith((f"http://{HOST}:", "http://localhost:")):
        ap.error("--url must be on 127.0.0.1 / localhost")
    if args.after_ready and (args.target != "api" or args.url):
        ap.error("--after-ready reads /v1/health of the server it starts: --target api, no --url")
    needed = REPO / "ui" / ("app.py" if args.target == "chat" else "api.py")
    if not needed.exists() and not args.url:
        print(f"{needed.relative_to(REPO)} is missing: nothing to load-test yet", file=sys.stderr)
        return 2

    tmp = tempfile.TemporaryDirectory(prefix="byline-load-")
    data_dir = args.data_dir or Path(tmp.name) / "byline"
    proc = None
    try:
        if args.url:
            url = args.url.rstrip("/") + "/"
        else:
            ingest(data_dir, timeout=args.start_timeout * 2)
            proc, url = start_server(args, data_dir, Path(tmp.name))
        if args.warmup:
            warm_up(args, url)

        res = Results()
        t0 = time.monotonic()
        deadline = t0 + args.duration
        still_running = 0
        if args.target == "api":
            asyncio.run(api_load(url, API_MODELS[args.generator], args.sessions, deadline, res, args.max_turns, args.request_timeout,
                                 args.seed))
        else:
            still_running = sum(th.is_alive() for th in run_chat(args, url, res, deadline))
        elapsed = time.monotonic() - t0
        lat = res.latencies
        out = {
            "target": args.target, "generator": args.generator,
            "sessions": args.sessions, "sessions_connected": res.sessions_started, "duration_s": round(elapsed, 1),
            "answers": len(lat), "answers_per_s": round(len(lat) / elapsed, 3) if elapsed else 0.0,
            "p50_s": round(pct(lat, 50), 3), "p95_s": round(pct(lat, 95), 3), "max_s": round(max(lat), 3) if lat else None,
            "mean_s": round(statistics.fmean(lat), 3) if lat else None, "refusals": res.refusals,
            "errors": len(res.errors), "error_samples": res.errors[:5], "threads_still_running": still_running,
        }
        if args.target == "api":
            out.update(first_chunk_p50_s=round(pct(res.first_chunk, 50), 3), first_chunk_p95_s=round(pct(res.first_chunk, 95), 3),
                       first_text_p50_s=round(pct(res.first_text, 50), 3), first_text_p95_s=round(pct(res.first_text, 95), 3),
                       rate_limited=res.rate_limited)
        if args.json:
            print(json.dumps(out, indent=2))
        else:
            print(f"{args.target}, {args.generator}: {out['sessions']} clients ({out['sessions_connected']} connected), "
                  f"{out['duration_s']} s: {out['answers']} answers, {out['answers_per_s']} answers/s, p50 {out['p50_s']} s, "
                  f"p95 {out['p95_s']} s, max {out['max_s']} s, {out['refusals']} refusals, {out['errors']} errors")
            if args.target == "api":
                print(f"  first chunk (sources) p50 {out['first_chunk_p50_s']} s, p95 {out['first_chunk_p95_s']} s; "
                      f"first text p50 {out['first_text_p50_s']} s, p95 {out['first_text_p95_s']} s; "
                      f"{out['rate_limited']} refused by a rate limit (429)")
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
