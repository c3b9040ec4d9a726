"""How a ``byline eval`` report is shown: the terminal table (rich) and the PNG chart (matplotlib)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rag.evaluation.datasets import DATASET_ATTRIBUTION

# Rows of the terminal table: (metric key, label, format).
TABLE_ROWS: list[tuple[str, str, str]] = [
    ("questions", "questions", "d"),
    ("hits@1", "Hits@1 (article)", "f"),
    ("hits@4", "Hits@4 (article)", "f"),
    ("hits@10", "Hits@10 (article)", "f"),
    ("mrr@10", "MRR@10 (article)", "f"),
    ("fact_hits@4", "Hits@4 (fact)", "f"),
    ("fact_hits@10", "Hits@10 (fact)", "f"),
    ("fact_mrr@10", "MRR@10 (fact)", "f"),
    ("fact_map@10", "MAP@10 (fact)", "f"),
    ("art_recall@10", "ArtRecall@10", "f"),
    ("art_recall@k", "ArtRecall@k (generator)", "f"),
    ("accuracy", "answer accuracy", "f"),
    ("accuracy_lenient", "accuracy (authors' token rule)", "f"),
    ("refusal_precision", "refusal precision", "f"),
    ("refusal_recall", "refusal recall (null)", "f"),
    ("answerable_refused", "answerable but refused", "f"),
    ("answerable_refused_retrieval", "  … at retrieval (count)", "d"),
    ("answerable_refused_model", "  … by the model (count)", "d"),
    ("answerable_refused_verification", "  … by verification (count)", "d"),
    ("citation_precision", "citation precision (evidence)", "f"),
    ("citation_support_rate", "citations ≥ min_support", "f"),
    ("citation_recall", "citation recall", "f"),
    ("retrieve_k10_p50_s", "retriever k=10 p50 s", "s"),
    ("retrieve_p50_s", "retrieve p50 s", "s"),
    ("retrieve_p95_s", "retrieve p95 s", "s"),
    ("first_token_p50_s", "first token p50 s", "s"),
    ("first_token_p95_s", "first token p95 s", "s"),
    ("total_p50_s", "total p50 s", "s"),
    ("total_p95_s", "total p95 s", "s"),
    ("prompt_tokens_mean", "prompt tokens (mean)", "t"),
    ("errors", "errors", "d"),
]
CHART_METRICS = ["hits@1", "hits@4", "mrr@10", "fact_hits@4", "art_recall@k", "accuracy", "refusal_recall", "citation_precision", "citation_recall"]


def _fmt(v: Any, kind: str) -> str:
    if v is None:
        return "–"
    if kind == "d":
        return str(int(v))
    if kind == "s":
        return f"{v:.3f}"
    if kind == "t":
        return f"{v:.0f}"
    return f"{v:.3f}"


def render_table(report: dict[str, Any], previous: dict[str, Any] | None = None) -> Any:
    """A rich table: metrics by question type; with a previous report, its overall value and the delta
    (red: a quality metric dropped by more than 0.02 or a latency grew >20%; green: the reverse)."""
    from rich.table import Table

    metrics = report["metrics"]
    groups = ["overall"] + [g for g in metrics if g != "overall"]
    gen = report["settings"].get("generator") or "retrieval only"
    title = f"byline eval — {report['run']['questions']} questions, generator {gen}, top_k {report['settings']['top_k']}"
    table = Table(title=title, caption=DATASET_ATTRIBUTION if report["dataset"].get("multihop_rag") else None, caption_justify="left")
    table.add_column("metric", no_wrap=True)
    for g in groups:
        table.add_column(g.replace("_query", ""), justify="right", no_wrap=True)
    prev_metrics = (previous or {}).get("metrics", {})
    if previous:
        table.add_column("previous", justify="right", no_wrap=True)
        table.add_column("Δ", justify="right", no_wrap=True)
    status = (report.get("compare") or {}).get("status", {})
    for key, label, kind in TABLE_ROWS:
        if all(metrics[g].get(key) is None for g in groups):
            continue
        cells = []
        for g in groups:
            txt = _fmt(metrics[g].get(key), kind)
            st = status.get(g, {}).get(key)
            cells.append(f"[red]{txt}[/red]" if st == "regressed" else f"[green]{txt}[/green]" if st == "improved" else txt)
        if previous:
            pv = prev_metrics.get("overall", {}).get(key)
            cv = metrics["overall"].get(key)
            cells.append(_fmt(pv, kind))
            if isinstance(pv, (int, float)) and isinstance(cv, (int, float)):
                d = cv - pv
                st = status.get("overall", {}).get(key)
                txt = f"{d:+.3f}"
                cells.append(f"[red]{txt}[/red]" if st == "regressed" else f"[green]{txt}[/green]" if st == "improved" else txt)
            else:
                cells.append("")
        table.add_row(label, *cells)
    return table


def draw_chart(report: dict[str, Any], previous: dict[str, Any] | None, path: Path) -> Path:
    """Grouped bars of the main quality metrics (this run vs the previous one) and total latency."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cur = report["metrics"]["overall"]
    prev = (previous or {}).get("metrics", {}).get("overall", {})
    keys = [k for k in CHART_METRICS if cur.get(k) is not None or prev.get(k) is not None]
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(9, 3.6), gridspec_kw={"width_ratios": [4, 1]})
    xs = list(range(len(keys)))
    w = 0.38 if previous else 0.6
    status = (report.get("compare") or {}).get("status", {}).get("overall", {})
    if previous:
        ax.bar([x - w / 2 for x in xs], [prev.get(k) or 0 for k in keys], w, label="previous", color="#bbbbbb")
        colors = ["#d62728" if status.get(k) == "regressed" else "#1f77b4" for k in keys]
        ax.bar([x + w / 2 for x in xs], [cur.get(k) or 0 for k in keys], w, label="this run", color=colors)
        ax.legend(fontsize=7, loc="lower right")
    else:
        ax.bar(xs, [cur.get(k) or 0 for k in keys], w, color="#1f77b4")
    ax.set_xticks(xs)
    ax.set_xticklabels(keys, rotation=35, ha="right", fontsize=7)
    ax.set_ylim(0, 1.05)
    ax.set_title(f"byline eval ({report['run']['questions']} q, {report['settings'].get('generator') or 'retrieval'})", fontsize=9)
    lat = ["total_p50_s", "total_p95_s"]
    lx = list(range(len(lat)))
    if previous:
        ax2.bar([x - w / 2 for x in lx], [prev.get(k) or 0 for k in lat], w, color="#bbbbbb")
        ax2.bar([x + w / 2 for x in lx], [cur.get(k) or 0 for k in lat], w, color="#ff7f0e")
    else:
        ax2.bar(lx, [cur.get(k) or 0 for k in lat], w, color="#ff7f0e")
    ax2.set_xticks(lx)
    ax2.set_xticklabels(["p50", "p95"], fontsize=7)
    ax2.set_title("total latency (s)", fontsize=9)
    if report["dataset"].get("multihop_rag"):
        fig.text(0.01, 0.01, "Data: MultiHop-RAG (Tang & Yang 2024), ODC-BY 1.0", fontsize=6, color="#666666")
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path
