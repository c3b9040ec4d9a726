"""Real-page benchmark: title, date and author accuracy, body recall and mojibake (run by hand; not collected by pytest).

    python tests/bench/bench_pages.py /tmp/pages                       # every suite, both portions
    python tests/bench/bench_pages.py /tmp/pages --portion tuned --worst 15
    python tests/bench/bench_pages.py /tmp/pages --suite aeb --limit 40 --jobs 2

The pages and their expected values come from public test suites, read from ROOT at run time (never
copied into this repository). ROOT holds a copy of each repository under its name; only these paths are read:

    ROOT/trafilatura/tests/evaldata.json, tests/cache/, tests/eval/      github.com/adbar/trafilatura (Apache-2.0)
        ~990 pages (news, blogs, institutional sites; mostly German and English) with the expected title,
        author, date, and text snippets that must appear in the main text ("with").
    ROOT/article-extraction-benchmark/ground-truth.json, html/*.html.gz  github.com/scrapinghub/article-extraction-benchmark (MIT)
        181 news and blog articles with the expected articleBody and the page's URL.
    ROOT/htmldate/tests/eval_mediacloud_2020.json, tests/test_set/       github.com/adbar/htmldate (Apache-2.0)
        200 news pages from 2020 (many languages, MediaCloud sample) with the expected publication date.

Fetch them, e.g.::

    for r in adbar/trafilatura scrapinghub/article-extraction-benchmark adbar/htmldate; do
        git clone --depth 1 https://github.com/$r ROOT/${r#*/}; done

Each page goes through the loader ``byline ingest URL`` uses for an HTML response (``_parse_response``,
with the page's URL as fetched and no HTTP charset, so the bytes are decoded as the ingester decodes them).
Compared with the suites' own expected values:

- title: exact after normalisation (NFKC, casefold, whitespace, quotes and dashes unified);
- date: the same calendar day (a page without an expected date is counted as "spurious" when one is given; an
  expected date that is no date, such as "2022-29-11", is left out);
- author: the set of names, normalised like titles, split at ``;``, ``,``, "and"/"und"/"&";
- body recall: AEB, the share of expected tokens found (multiset); trafilatura, the share of "with" snippets found
  (and, as a check on precision, the share of its "without" snippets, menus and footers, that were kept);
- mojibake: UTF-8 read as a single-byte charset ("Ã©", "â€™") or U+FFFD in the title, author or text, when the
  expected text has none; counted apart when the page's own bytes carry it (text double-encoded by the site).

Pages are split into two portions by a hash of their key: "tuned" (fixes were made looking at its failures) and
"held-out" (never looked at while fixing); the htmldate suite is held out entirely. Figures go to RESULTS.md by hand.
"""

from __future__ import annotations

import argparse
import collections
import gzip
import hashlib
import json
import math
import re
import sys
import time
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

import rag.config  # noqa: E402,F401  (offline switches)

SUITES = ("trafilatura", "aeb", "htmldate")


@dataclass
class Page:
    suite: str
    key: str  # the page's URL (or the suite's id when it has none)
    path: Path
    url: str = ""
    title: str | None = None
    date: str | None = None  # YYYY-MM-DD, "" = the page has none
    author: str | None = None  # "" = the page names none
    body: str | None = None  # the whole expected text (AEB)
    snippets: list[str] = field(default_factory=list)  # text that must be in the main text (trafilatura)
    noise: list[str] = field(default_factory=list)  # text that must not be (trafilatura: menus, footers, comments)

    @property
    def portion(self) -> str:
        if self.suite == "htmldate":
            return "held-out"
        return "tuned" if int(hashlib.sha1(f"{self.suite}:{self.key}".encode()).hexdigest(), 16) % 2 == 0 else "held-out"


# --- the suites ------------------------------------------------------------------------------------
def iso_day(v) -> str | None:
    """An expected date as YYYY-MM-DD; "" stays "" (the page has none); a malformed one ("2022-29-11") is no ground truth."""
    import datetime as dt

    if not isinstance(v, str):
        return None
    if not v:
        return ""
    try:
        return dt.date.fromisoformat(v[:10]).isoformat()
    except ValueError:
        return None


def trafilatura_pages(root: Path) -> list[Page]:
    base = root / "trafilatura" / "tests"
    pages = []
    for url, v in json.loads((base / "evaldata.json").read_text(encoding="utf-8")).items():
        path = next((p for p in (base / "cache" / v["file"], base / "eval" / v["file"]) if p.is_file()), None)
        if path is None:
            continue
        author = v.get("author")
        if isinstance(author, list):
            author = "; ".join(author)
        pages.append(Page("trafilatura", url, path, url=url, title=v.get("title") or None, date=iso_day(v.get("date")),
                          author=author, snippets=list(v.get("with") or []), noise=list(v.get("without") or [])))
    return pages


def aeb_pages(root: Path) -> list[Page]:
    base = root / "article-extraction-benchmark"
    gt = json.loads((base / "ground-truth.json").read_text(encoding="utf-8"))
    return [Page("aeb", v.get("url") or h, base / "html" / f"{h}.html.gz", url=v.get("url") or "", body=v["articleBody"])
            for h, v in gt.items() if (base / "html" / f"{h}.html.gz").is_file()]


def htmldate_pages(root: Path) -> list[Page]:
    base = root / "htmldate" / "tests"
    pages = []
    for url, v in json.loads((base / "eval_mediacloud_2020.json").read_text(encoding="utf-8")).items():
        d = iso_day(v.get("date"))
        path = base / "test_set" / v["file"]
        if d and path.is_file():
            pages.append(Page("htmldate", url, path, url=url, date=d))
    return pages


LOADERS = {"trafilatura": trafilatura_pages, "aeb": aeb_pages, "htmldate": htmldate_pages}


# --- comparison ------------------------------------------------------------------------------------
_QUOTES = str.maketrans({c: "'" for c in "‘’‚‛′`´"} | {c: '"' for c in "“”„‟″«»"} | {c: "-" for c in "‐‑‒–—―−"})


def norm(s: str) -> str:
    s = unicodedata.normalize("NFKC", s or "").translate(_QUOTES).replace("…", "...").casefold()
    return " ".join(s.split())


def names(s: str) -> set[str]:
    parts = re.split(r"\s*(?:[;,&]|\band\b|\bund\b)\s*", norm(s))
    return {re.sub(r"^by\s+", "", p).strip(" .") for p in parts if p.strip(" .")}


_TOKEN = re.compile(r"\w+", re.U)


def token_recall(expected: str, got: str) -> float:
    want = collections.Counter(_TOKEN.findall(norm(expected)))
    have = collections.Counter(_TOKEN.findall(norm(got)))
    total = sum(want.values())
    return sum(min(n, have[t]) for t, n in want.items()) / total if total else 1.0


def snippet_recall(snippets: list[str], got: str) -> float:
    text = norm(got)
    return sum(norm(s) in text for s in snippets) / len(snippets)


# UTF-8 read as windows-1252/Latin-1: a lead byte (Â-ô) followed by continuation bytes shown as cp1252 characters.
_CONT = "\x80-\xbf€‚ƒ„…†‡ˆ‰Š‹ŒŽ‘’“”•–—˜™š›œžŸ"
_MOJIBAKE = re.compile(f"[\u00c2-\u00f4][{_CONT}]{{1,3}}")


def mojibake(s: str) -> str:
    """The first mojibake sequence in ``s`` (a run that re-encodes to valid UTF-8, or U+FFFD), else ""."""
    if "\ufffd" in s:
        return "\ufffd"
    for m in _MOJIBAKE.finditer(s):
        try:
            fixed = m.group().encode("cp1252").decode("utf-8")
        except (UnicodeEncodeError, UnicodeDecodeError):
            continue
        # What UTF-8 text is written in (Latin, Greek, Cyrillic, Hebrew, Arabic, punctuation), not "É®" -> IPA "ɮ".
        if any(0xA0 <= ord(c) <= 0x17F or 0x370 <= ord(c) <= 0x6FF or 0x2000 <= ord(c) <= 0x20CF for c in fixed):
            return m.group()
    return ""


# --- running ---------------------------------------------------------------------------------------
def extract(page: Page) -> dict:
    """Byline's reading of one page: what ``byline ingest URL`` stores for it (or the error it reports)."""
    from ingest.loaders import _parse_response, quiet_libraries
    from rag.errors import IngestError

    quiet_libraries()
    data = page.path.read_bytes()
    if page.path.suffix == ".gz":
        data = gzip.decompress(data)
    t = time.perf_counter()
    try:
        items = list(_parse_response(data, "text/html", page.url or page.key, page.url or page.key))
    except IngestError as exc:
        items = [exc]
    secs = time.perf_counter() - t
    art = next((i for i in items if not isinstance(i, IngestError)), None)
    if art is None:
        return {"error": str(items[0]) if items else "nothing", "secs": secs}
    bad = mojibake(" ".join((art.title, art.author, art.text)))
    # Mojibake the page itself carries (double-encoded text, U+FFFD in its bytes) is the site's, not the reader's.
    return {"title": art.title, "date": art.date_iso, "author": art.author, "text": art.text, "secs": secs,
            "mojibake": bad, "mojibake_in_page": bool(bad) and bad.encode("utf-8") in data}


def score(page: Page, got: dict) -> dict:
    """Per-field results for one page: True/False (or a recall) where the suite has an expected value."""
    r: dict = {}
    err = "error" in got
    if page.title:
        r["title"] = not err and norm(got["title"]) == norm(page.title)
    if page.date:
        r["date"] = not err and got["date"] == page.date[:10]
        if page.suite == "htmldate":
            r["date_news"] = r["date"]
    elif page.date == "" and not err:
        r["date_spurious"] = bool(got["date"])
    if page.author:
        r["author"] = not err and names(got["author"]) == names(page.author)
    elif page.author == "" and not err:
        r["author_spurious"] = bool(got["author"])
    if page.body:
        r["body"] = 0.0 if err else token_recall(page.body, got["text"])
    if page.snippets:
        r["snippets"] = 0.0 if err else snippet_recall(page.snippets, got["text"])
    if page.noise and not err:
        r["noise"] = snippet_recall(page.noise, got["text"])
    if not err:
        expected = " ".join(x or "" for x in (page.title, page.author, page.body, *page.snippets))
        bad = got["mojibake"] and got["mojibake"] not in expected
        r["mojibake"] = bool(bad) and not got["mojibake_in_page"]
        r["mojibake_in_page"] = bool(bad) and got["mojibake_in_page"]
    r["error"] = err
    return r


def run_one(page: Page) -> tuple[Page, dict, dict]:
    got = extract(page)
    return page, got, score(page, got)


FIELDS = [  # (key, label, how it is summarised)
    ("title", "title exact (normalised)", "rate"), ("date", "date same day", "rate"),
    ("date_news", "  of which htmldate's news pages", "rate"), ("author", "author (name set)", "rate"),
    ("body", "body recall, tokens (AEB)", "mean"), ("snippets", "body recall, snippets (trafilatura)", "mean"),
    ("noise", "boilerplate kept, snippets (trafilatura; lower is better)", "mean"),
    ("mojibake", "pages with mojibake", "count"), ("mojibake_in_page", "  pages whose own bytes carry it", "count"),
    ("error", "pages not read (error)", "count"),
    ("date_spurious", "date given, none expected", "rate"), ("author_spurious", "author given, none expected", "rate"),
]


def summary(results: list[tuple[Page, dict, dict]]) -> dict[str, tuple[float, int]]:
    out = {}
    for key, _, how in FIELDS:
        vals = [float(r[key]) for _, _, r in results if key in r]
        if vals:
            out[key] = (sum(vals) if how == "count" else sum(vals) / len(vals), len(vals))
    return out


def show(value: tuple[float, int] | None, how: str) -> str:
    if value is None:
        return "-"
    v, n = value
    return f"{int(v)} / {n}" if how == "count" else f"{v:.3f} (n={n})"


def worst(results: list[tuple[Page, dict, dict]], k: int) -> None:
    def short(s: str | None, n: int = 90) -> str:
        s = " ".join((s or "").split())
        return s if len(s) <= n else s[: n - 1] + "…"

    for key, label, how in FIELDS:
        if key in ("noise", "date_news", "mojibake_in_page"):
            continue
        if key in ("error",):
            bad = [(p, g) for p, g, r in results if r.get(key)]
        elif how == "mean":
            bad = sorted(((r[key], p, g) for p, g, r in results if key in r and r[key] < 0.9), key=lambda x: x[0])
            bad = [(p, g | {"_recall": v}) for v, p, g in bad]
        else:
            bad = [(p, g) for p, g, r in results if r.get(key) is (key in ("mojibake", "date_spurious", "author_spurious"))
                   and "error" not in g]
        if not bad:
            continue
        print(f"\n## worst: {label} ({len(bad)})")
        for p, g in bad[:k]:
            where = f"{p.suite}:{p.path.name}"
            if key == "error":
                print(f"- {where}: {short(g['error'])}")
            elif key == "title":
                print(f"- {where}\n    want {short(p.title)!r}\n    got  {short(g['title'])!r}")
            elif key in ("date", "date_spurious"):
                print(f"- {where} ({short(p.url, 70)}): want {p.date!r} got {g['date']!r}")
            elif key in ("author", "author_spurious"):
                print(f"- {where}: want {short(p.author)!r} got {short(g['author'])!r}")
            elif key == "mojibake":
                print(f"- {where}: {g['mojibake']!r} in {short(g['title'], 60)!r}")
            else:
                print(f"- {where}: recall {g['_recall']:.2f}, {len(g['text'])} chars extracted")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("root", type=Path, help="folder holding the suites' repositories (see the docstring)")
    ap.add_argument("--suite", choices=SUITES, action="append", help="only these suites (repeatable)")
    ap.add_argument("--portion", choices=("tuned", "held-out", "all"), default="all")
    ap.add_argument("--limit", type=int, default=0, help="at most N pages per suite (for a quick look)")
    ap.add_argument("--worst", type=int, default=0, help="print up to N failures per field (of the tuned portion only, "
                    "unless --portion names one), so that the held-out portion stays unseen")
    ap.add_argument("--jobs", type=int, default=1, help="worker processes (the machine is shared: keep it low)")
    ap.add_argument("--json", type=Path, help="write per-page results here")
    args = ap.parse_args()

    pages: list[Page] = []
    for suite in args.suite or SUITES:
        try:
            got = sorted(LOADERS[suite](args.root), key=lambda p: p.key)
        except FileNotFoundError as exc:
            print(f"{suite}: not found under {args.root} ({exc.filename}); skipped", file=sys.stderr)
            continue
        got = [p for p in got if args.portion == "all" or p.portion == args.portion]
        pages += got[: args.limit] if args.limit else got
    if not pages:
        sys.exit(f"no pages found under {args.root}: see this script's docstring")

    t0 = time.perf_counter()
    if args.jobs > 1:
        from multiprocessing import Pool

        with Pool(args.jobs) as pool:
            results = pool.map(run_one, pages, chunksize=4)
    else:
        results = [run_one(p) for p in pages]
    wall = time.perf_counter() - t0
    secs = sorted(g["secs"] for _, g, _ in results)

    groups = {"all": results}
    if args.portion == "all":
        groups |= {"tuned": [x for x in results if x[0].portion == "tuned"], "held-out": [x for x in results if x[0].portion == "held-out"]}
    sums = {name: summary(rs) for name, rs in groups.items()}
    counts = {name: collections.Counter(p.suite for p, _, _ in rs) for name, rs in groups.items()}
    print(f"{len(pages)} pages ({', '.join(f'{s} {n}' for s, n in sorted(counts['all'].items()))}); "
          f"{wall:.0f} s, median {secs[len(secs) // 2] * 1000:.0f} ms/page, p95 {secs[math.floor(len(secs) * .95)] * 1000:.0f} ms\n")
    print("| field | target | " + " | ".join(groups) + " |")
    print("|---|---|" + "---|" * len(groups))
    targets = {"title": "≥ 0.90", "date": "≥ 0.95", "author": "≥ 0.85", "body": "≥ 0.97", "snippets": "≥ 0.97", "mojibake": "0"}
    for key, label, how in FIELDS:
        print(f"| {label} | {targets.get(key, '')} | " + " | ".join(show(sums[g].get(key), how) for g in groups) + " |")
    if args.worst:
        shown = [x for x in results if x[0].portion == "tuned"] if args.portion == "all" else results
        worst(shown, args.worst)
    if args.json:
        args.json.write_text(json.dumps([{"suite": p.suite, "key": p.key, "portion": p.portion, "scores": r,
                                          "got": {k: v for k, v in g.items() if k != "text"}} for p, g, r in results],
                                         ensure_ascii=False, indent=1))


if __name__ == "__main__":
    main()
