"""The ``byline`` command. Every subcommand calls the same library functions scripts use."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Any, Callable, Sequence

import rag.config  # noqa: F401  (sets the offline switches before anything heavy is imported)
from rag.config import Settings, load_settings
from rag.errors import BylineError, ConfigError
from rag.generators import generator_names

log = logging.getLogger("byline")

SAMPLE_DIR = Path(__file__).resolve().parent.parent / "data"
DEMO_QUESTION = "Who is Ali al-Daffayi and what did he announce?"


def _settings(args: argparse.Namespace) -> Settings:
    overrides: dict[str, Any] = {}
    for name in ("data_dir", "chroma_path", "chroma_url", "collection", "generator"):
        v = getattr(args, name, None)
        if v is not None:
            overrides[name] = v
    return load_settings(**overrides)


def _console() -> Any:
    from rich.console import Console

    return Console(stderr=False, highlight=False, soft_wrap=True)


# --- ingest / list / status / delete ---------------------------------------------------------------
def cmd_ingest(args: argparse.Namespace, settings: Settings) -> int:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from ingest.pipeline import Ingestor

    console = _console()
    ingestor = Ingestor(settings)
    with Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console, transient=True, disable=args.quiet or args.json or not sys.stdout.isatty()) as prog:
        arts = prog.add_task("articles", total=None)
        chunks = prog.add_task("chunks embedded", total=None)

        def progress(event: str, n: int) -> None:
            prog.advance(arts if event == "article" else chunks, n)

        report = ingestor.ingest(args.paths, progress=progress)
    if args.json:
        print(json.dumps(report.as_dict(), indent=2))
    else:
        for err in report.errors:
            console.print(f"[red]error[/red] {err.source}: {err.reason}", markup=True, highlight=False)
        console.print(report.summary())
    return 1 if report.errors and not (report.added or report.updated or report.unchanged) else (2 if report.errors else 0)


def cmd_list(args: argparse.Namespace, settings: Settings) -> int:
    from rag.store import Store

    arts = Store(settings).articles()
    if args.json:
        print(json.dumps([a.__dict__ for a in arts], indent=2))
        return 0
    from rich.table import Table

    table = Table("id", "date", "outlet", "title", "chunks")
    for a in arts:
        table.add_row(a.id, a.date or "unknown", a.source or "-", a.title or "(untitled)", str(a.n_chunks))
    _console().print(table)
    return 0


def cmd_status(args: argparse.Namespace, settings: Settings) -> int:
    from rag.llamacpp import build_info
    from rag.store import Store

    st = Store(settings).stats()
    build = build_info(settings.llm_runtime)
    if args.json:
        print(json.dumps({**st, "local_model_build": build}, indent=2))
        return 0
    c = _console()
    c.print(f"Store:    {st['store']} (collection {st['collection']})")
    c.print(f"Articles: {st['articles']}   Chunks: {st['chunks']}   Undated: {st['undated']}")
    c.print(f"Dates:    {st['first_date'] or '-'} … {st['last_date'] or '-'}")
    c.print("Outlets:  " + (", ".join(f"{k} ({v})" for k, v in st["outlets"].items()) or "-"))
    if build.get("runtime") == "ik":
        c.print(f"Local model: ik_llama.cpp (ik-llama-cpp-python {build['ik_llama_cpp']})", markup=False)
    elif build:
        c.print(f"Local model: xllamacpp {build['xllamacpp']}, built for {', '.join(build['cpu_features']) or 'generic x86'}", markup=False)
    if build.get("hint"):
        c.print(f"  Faster: {build['hint']}", markup=False)
    return 0


def cmd_reindex(args: argparse.Namespace, settings: Settings) -> int:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from rag.store import Store

    store = Store(settings)
    out: dict[str, Any] = {}
    with Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=_console(), transient=True, disable=args.json or not sys.stdout.isatty()) as prog:
        if args.embeddings:
            from rag.embed import get_embedder, reembed

            embedder = get_embedder(settings)
            task = prog.add_task("chunks re-embedded", total=None)
            out["reembedded_chunks"] = reembed(store, embedder, progress=lambda done, total: prog.update(task, completed=done, total=total))
            out["embedder"] = embedder.identity.name
        task = prog.add_task("chunks keyword-indexed", total=None)
        rep = store.keywords.rebuild(progress=lambda done, total: prog.update(task, completed=done, total=total))
    out.update({"keyword_chunks": rep.chunks, "terms": rep.terms, "store_chunks": store.count(), "seconds": round(rep.seconds, 2),
                "keyword_index": str(rep.path)})
    if args.json:
        print(json.dumps(out, indent=2))
        return 0
    if args.embeddings:
        n = out["reembedded_chunks"]
        _console().print(f"Vectors made by {out['embedder']!r}: {n} chunks re-embedded" if n else
                         f"Vectors already made by {out['embedder']!r}: nothing to re-embed")
    _console().print(f"Keyword index rebuilt from the store: {rep.chunks} chunks ({out['store_chunks']} in the store), "
                     f"{rep.terms} terms, {rep.seconds:.1f} s; {rep.path}")
    return 0


def cmd_delete(args: argparse.Namespace, settings: Settings) -> int:
    from ingest.pipeline import Ingestor

    ingestor = Ingestor(settings)
    missing = 0
    for aid in args.ids:
        n = ingestor.delete(aid)
        if n:
            print(f"deleted {aid} ({n} chunks)")
        else:
            print(f"no article with id {aid}", file=sys.stderr)
            missing += 1
    return 1 if missing else 0


def cmd_watch(args: argparse.Namespace, settings: Settings) -> int:
    """Poll feeds into the archive until Ctrl+C (or once with --once); --status shows what each feed last did."""
    from ingest.watch import Watcher, feed_status, parse_duration

    if args.status:
        feeds = feed_status(settings)
        if args.json:
            print(json.dumps({u: {k: v for k, v in vars(st).items() if k != "entries"} for u, st in feeds.items()}, indent=2))
            return 0
        for u, st in feeds.items():
            health = f"failing ({st.failures} in a row), next try {st.next_poll}" if st.failures else f"ok, next poll {st.next_poll}"
            print(f"{u}\n  last poll {st.last_poll or 'never'}: {st.new_items} new, {st.changed_items} changed; {health}")
            if st.last_error:
                print(f"  last error {st.last_error_at}: {st.last_error}")
        if not feeds:
            print("no feeds watched yet: byline watch FEED_URL...")
        return 0
    try:
        every = parse_duration(args.every) if args.every else None
    except ValueError as exc:
        raise ConfigError(f"--every: {exc}") from None
    watcher = Watcher(settings)
    urls = args.feeds or list(watcher.feeds)
    bad = [u for u in urls if not u.startswith(("http://", "https://"))]
    if bad or not urls:
        raise ConfigError(f"not a feed URL: {bad[0]!r}" if bad else "name the feeds to watch: byline watch FEED_URL...")

    def show(r: Any) -> None:
        if args.json:
            print(json.dumps(vars(r)), flush=True)
            return
        what = {"updated": f"{r.new_items} new, {r.changed_items} changed", "not modified": "nothing new"}.get(r.status)
        print(f"{r.url}: {what or f'error: {r.error} (next try in {r.retry_in:.0f} s)'}", flush=True)
        for e in r.entry_errors:
            print(f"  error {e}", flush=True)

    if args.once:
        results = watcher.run(urls, every=every, once=True, on_poll=show)
    else:
        print(f"watching {len(urls)} feed(s) into {settings.data_dir} (Ctrl+C to stop)", file=sys.stderr, flush=True)
        results = _until_ctrl_c(lambda: watcher.run(urls, every=every, on_poll=show), watcher.stop)
    failed = sum(not r.ok for r in results.values())  # each feed as it last stood
    return 1 if results and failed == len(results) else (2 if failed else 0)


def _until_ctrl_c(work: Callable[[], Any], stop: Callable[[], None]) -> Any:
    """Run ``work`` on a worker thread until it returns; the first Ctrl+C (or SIGTERM) calls ``stop`` and
    waits for ``work`` to finish (a poll in progress is saved), the second stops at once.

    Why a thread: a signal handler runs on the main thread between two of its bytecodes, so calling
    ``stop`` there while the main thread itself sat inside the loop's ``Event.wait`` could block for ever
    on the Event's lock (a `byline watch` that ignored Ctrl+C)."""
    import signal
    import threading

    box: dict[str, Any] = {}

    def run() -> None:
        try:
            box["result"] = work()
        except BaseException as exc:  # noqa: BLE001 - handed to the main thread, which raises it
            box["error"] = exc

    def on_signal(*_: Any) -> None:  # SIGTERM too: `docker stop`, systemd and compose stop a service with it
        print("byline: stopping (a poll in progress is finished and saved first; Ctrl+C again to stop at once)", file=sys.stderr, flush=True)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        stop()

    worker = threading.Thread(target=run, name="byline-watch", daemon=True)  # daemon: the second Ctrl+C does not wait for it
    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        worker.start()
        while worker.is_alive():
            worker.join(0.5)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if "error" in box:
        raise box["error"]
    return box["result"]


# --- ask / demo ------------------------------------------------------------------------------------
def _filters(args: argparse.Namespace) -> dict[str, Any] | None:
    f: dict[str, Any] = {}
    if getattr(args, "source", None):
        f["sources"] = args.source
    if getattr(args, "since", None):
        f["date_from"] = args.since
    if getattr(args, "until", None):
        f["date_to"] = args.until
    return f or None


def print_answer(answer: Any, console: Any) -> None:
    from ui.format import answer_to_terminal

    console.print(answer_to_terminal(answer), markup=False, highlight=False)


def cmd_ask(args: argparse.Namespace, settings: Settings) -> int:
    import rag
    from ui.format import sources_to_terminal

    question = " ".join(args.question)
    if args.json:
        a = rag.ask(question, filters=_filters(args), settings=settings)
        print(json.dumps(a.as_dict(), indent=2, ensure_ascii=False))
        return 0
    console = _console()
    answer = None
    streamed = False
    live = not args.no_stream and sys.stdout.isatty()
    for piece in rag.ask_stream(question, filters=_filters(args), settings=settings):
        if isinstance(piece, rag.Sources):
            if live:
                console.print(sources_to_terminal(piece) + "\n", markup=False, highlight=False)
        elif isinstance(piece, str):
            if live:
                console.print(piece, end="", markup=False, highlight=False)
                streamed = True
        else:
            answer = piece
    if streamed:
        console.print("\n")
    assert answer is not None
    print_answer(answer, console)
    return 0


def cmd_demo(args: argparse.Namespace, settings: Settings) -> int:
    import rag
    from ingest.pipeline import Ingestor

    console = _console()
    console.print(f"Ingesting the sample articles in {SAMPLE_DIR} …")
    report = Ingestor(settings).ingest([str(SAMPLE_DIR)])
    console.print(report.summary())
    question = args.question or DEMO_QUESTION
    console.print(f"\nQ: {question}\n", markup=False)
    answer = rag.ask(question, settings=settings)
    print_answer(answer, console)
    console.print("\nNext: `byline ask \"...\"`, `byline chat` (opens http://127.0.0.1:7860), `byline ingest PATH...`.")
    return 0


# --- chat lives in its own module; eval runs rag.evaluation --------------------------------------
def cmd_chat(args: argparse.Namespace, settings: Settings) -> int:
    from ui.app import run_from_cli

    return run_from_cli(args, settings)


def cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    import uvicorn

    from ui.api import create_app
    from ui.app import check_binding, free_port, is_loopback
    from ui.keys import KeyStore

    host = args.host or settings.host
    port = settings.port if args.port is None else args.port
    auth = args.auth or settings.auth
    keys = None
    if not is_loopback(host):  # anyone who can reach the address could read and change the archive
        keys = KeyStore.for_data_dir(settings.data_dir)
        if not keys.active():
            raise ConfigError(f"refusing to serve the API on {host!r} without API keys: create one with "
                              "`byline keys create NAME` (add --admin for a key that may ingest and delete), "
                              "or keep the default --host 127.0.0.1.")
        if not args.no_chat:
            check_binding(host, auth)  # the chat needs --auth user:password there
    if port == 0:
        port = free_port(host)
    app = create_app(settings, chat=not args.no_chat, host=host, keys=keys, auth=auth)
    shown = f"http://{f'[{host}]' if ':' in host else host}:{port}"
    print(("" if args.no_chat else f"Byline chat: {shown}/\n") + f"Byline API:  {shown}/v1  (docs {shown}/docs)\n"
          f"Byline MCP:  {shown}/mcp   (Ctrl+C to stop)", flush=True)
    try:
        uvicorn.run(app, host=host, port=port, log_level="info" if args.verbose else "warning")
    except OSError as exc:
        raise ConfigError(f"cannot serve on {host}:{port}: {exc}. Pick another --port (0 = any free port).") from None
    return 0


def cmd_keys(args: argparse.Namespace, settings: Settings) -> int:
    from ui.keys import ADMIN, READ, KeyStore

    keys = KeyStore.for_data_dir(settings.data_dir)
    if args.action == "create":
        if not args.name:
            raise ConfigError("give the key a name: byline keys create NAME [--admin]")
        info, token = keys.create(args.name, ADMIN if args.admin else READ)
        if args.json:
            print(json.dumps({"id": info.id, "name": info.name, "role": info.role, "key": token}))
        else:
            print(f"Created {info.role} key {info.name!r} (id {info.id}). It is shown only now; keep it somewhere safe:\n{token}")
        return 0
    if args.action == "revoke":
        if not args.name:
            raise ConfigError("name the key to revoke: byline keys revoke NAME_OR_ID")
        info = keys.revoke(args.name)
        print(f"revoked key {info.name!r} (id {info.id})")
        return 0
    listed = keys.list()
    if args.json:
        print(json.dumps([{k: v for k, v in vars(i).items() if k != "hash"} for i in listed], indent=2))
        return 0
    for i in listed:
        print(f"{i.id}  {i.role:5}  {i.created}  {'revoked ' + i.revoked if i.revoked else 'active'}  {i.name}")
    if not listed:
        print(f"no API keys yet ({keys.path}); create one with `byline keys create NAME`")
    return 0


def cmd_mcp(args: argparse.Namespace, settings: Settings) -> int:
    from ui.mcp_server import run_stdio
    from ui.service import Service

    run_stdio(Service(settings))
    return 0


def cmd_eval(args: argparse.Namespace, settings: Settings) -> int:
    from rich.console import Console

    from ingest.corpus import index_corpus
    from rag.evaluation import report, runner

    stream = sys.stderr if args.json else sys.stdout
    # Piped or captured output: wide enough for the table (rich would fall back to 80 columns and truncate).
    console = Console(stderr=bool(args.json), highlight=False, soft_wrap=True, width=None if stream.isatty() else 150)
    req = runner.EvalRequest(questions=args.questions, corpus=args.corpus, index_existing=args.index_existing, limit=args.limit,
                             seed=args.seed, k=args.k, out=args.out, compare=args.compare, chart=args.chart,
                             draw_chart=not args.no_chart, retrieval_only=args.retrieval_only, checkpoint=args.checkpoint)
    done = runner.evaluate(req, settings, index_corpus=index_corpus, console=console, show_progress=not args.json)
    if args.json:
        print(json.dumps(done.report, indent=2, ensure_ascii=False))
    else:
        console.print(report.render_table(done.report, done.previous))
        console.print(f"Report: {done.out}" + (f"   Chart: {done.chart}" if done.chart else ""))
    return done.exit_code


def add_eval_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--questions", help="question file: JSON list or JSONL (question, answer, question_type, evidence ids/urls/facts); "
                   "default ../shared/eval/multihop-rag/questions.json")
    p.add_argument("--corpus", action="append", help="articles to ingest into a fresh temporary index (JSON/JSONL records, files or folders; "
                   "repeatable); default the articles file next to the questions")
    p.add_argument("--index-existing", action="store_true", help="evaluate against the configured index instead of a fresh temporary one")
    p.add_argument("--limit", type=int, help="evaluate only this many questions")
    p.add_argument("--seed", type=int, help="shuffle (stratified by question type) with this seed before --limit")
    p.add_argument("--generator", choices=generator_names(), help="answer generator (BYLINE_GENERATOR)")
    p.add_argument("--k", type=int, help="passages the generator sees (top_k; ArtRecall@k uses it)")
    p.add_argument("--out", default="eval-report.json", help="JSON report path (default eval-report.json)")
    p.add_argument("--compare", metavar="PREVIOUS.json", help="an earlier report: deltas in the table, regressions in red, both runs in the chart")
    p.add_argument("--chart", help="PNG chart path (default: --out with .png)")
    p.add_argument("--no-chart", action="store_true", help="do not draw the PNG")
    p.add_argument("--retrieval-only", action="store_true", help="skip answer generation (retrieval metrics only)")
    p.add_argument("--checkpoint", metavar="FILE.jsonl",
                   help="append each scored question to this file and, when it already holds results of the same run "
                        "(questions file, generator, k), reuse them: an interrupted long run resumes where it stopped")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="byline", description="Ask a news archive; get answers with numbered citations.")
    p.add_argument("-v", "--verbose", action="store_true", help="log what happens")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--data-dir", dest="data_dir", help="Byline's data folder (BYLINE_DATA_DIR)")
    common.add_argument("--chroma-path", dest="chroma_path", help="embedded Chroma folder (BYLINE_CHROMA_PATH)")
    common.add_argument("--chroma-url", dest="chroma_url", help="Chroma server URL (BYLINE_CHROMA_URL)")
    common.add_argument("--collection", help="Chroma collection (BYLINE_COLLECTION)")
    common.add_argument("--json", action="store_true", help="machine-readable output")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("ingest", parents=[common], help="add files, folders, URLs or feeds to the archive")
    s.add_argument("paths", nargs="+", help="files, folders, http(s) URLs, RSS/Atom feed URLs")
    s.add_argument("-q", "--quiet", action="store_true")
    s.set_defaults(func=cmd_ingest)

    s = sub.add_parser("list", parents=[common], help="list indexed articles")
    s.set_defaults(func=cmd_list)
    s = sub.add_parser("status", parents=[common], help="index statistics")
    s.set_defaults(func=cmd_status)
    s = sub.add_parser("reindex", parents=[common], help="rebuild the keyword index from the store (repairs a damaged one)")
    s.add_argument("--embeddings", action="store_true",
                   help="first re-embed every stored passage with the configured embedder (BYLINE_EMBEDDER), resuming an interrupted run")
    s.set_defaults(func=cmd_reindex)
    s = sub.add_parser("delete", parents=[common], help="remove articles by id")
    s.add_argument("ids", nargs="+")
    s.set_defaults(func=cmd_delete)

    s = sub.add_parser("watch", parents=[common], help="poll RSS/Atom feeds and ingest new or changed entries until Ctrl+C")
    s.add_argument("feeds", nargs="*", help="feed URLs (default: the feeds watched before in this data folder)")
    s.add_argument("--every", help="time between polls of each feed, e.g. 15m, 1h, 90s (BYLINE_WATCH_INTERVAL, default 15m)")
    s.add_argument("--once", action="store_true", help="poll each feed once and exit")
    s.add_argument("--status", action="store_true", help="show each feed's last poll, new items and last error")
    s.set_defaults(func=cmd_watch)

    for name in ("ask", "demo"):
        s = sub.add_parser(name, parents=[common], help="ask a question" if name == "ask" else "ingest data/ and answer a sample question")
        s.add_argument("question", nargs="+" if name == "ask" else "?", help="the question")
        s.add_argument("--generator", choices=generator_names(), help="answer generator (BYLINE_GENERATOR)")
        s.add_argument("--source", action="append", help="only this outlet (repeatable)")
        s.add_argument("--since", help="only articles on or after YYYY-MM-DD")
        s.add_argument("--until", help="only articles on or before YYYY-MM-DD")
        s.add_argument("--no-stream", action="store_true", help="print the answer only when complete")
        s.set_defaults(func=cmd_ask if name == "ask" else cmd_demo)

    s = sub.add_parser("chat", parents=[common], help="open the chat in a browser (127.0.0.1)")
    s.add_argument("--host", help="address to bind (default 127.0.0.1; others need --auth)")
    s.add_argument("--port", type=int, help="port (default 7860)")
    s.add_argument("--auth", help="user:password required to use the chat")
    s.add_argument("--generator", choices=generator_names(), help="answer generator (BYLINE_GENERATOR)")
    s.set_defaults(func=cmd_chat)

    s = sub.add_parser("serve", parents=[common], help="serve the API (/v1, OpenAI-compatible), MCP (/mcp) and the chat (/) on one port")
    s.add_argument("--host", help="address to bind (default 127.0.0.1; others need API keys: `byline keys`)")
    s.add_argument("--port", type=int, help="port (default 7860; 0 = any free port)")
    s.add_argument("--no-chat", dest="no_chat", action="store_true", help="serve the API and MCP only, no chat page")
    s.add_argument("--auth", help="user:password for the chat page (needed on addresses other than loopback)")
    s.add_argument("--generator", choices=generator_names(), help="default answer generator (BYLINE_GENERATOR)")
    s.set_defaults(func=cmd_serve)

    s = sub.add_parser("keys", parents=[common], help="API keys for `byline serve` on addresses other than loopback")
    s.add_argument("action", choices=["create", "list", "revoke"])
    s.add_argument("name", nargs="?", help="the key's name (create), or its name or id (revoke)")
    s.add_argument("--admin", action="store_true", help="create: the key may also ingest and delete articles")
    s.set_defaults(func=cmd_keys)

    s = sub.add_parser("mcp", parents=[common], help="serve MCP over stdio (for editors and agents that start Byline themselves)")
    s.add_argument("--generator", choices=generator_names(), help="answer generator (BYLINE_GENERATOR)")
    s.set_defaults(func=cmd_mcp)

    s = sub.add_parser("eval", parents=[common], help="evaluate retrieval and answers on a question set")
    add_eval_arguments(s)
    s.set_defaults(func=cmd_eval)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if not args.verbose:
        for noisy in ("sentence_transformers", "httpx", "chromadb", "transformers"):
            logging.getLogger(noisy).setLevel(logging.ERROR)
    try:
        settings = _settings(args)
        return int(args.func(args, settings) or 0)
    except BylineError as exc:
        print(f"byline: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("byline: interrupted; re-run the same command to finish (ingest is idempotent)", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
