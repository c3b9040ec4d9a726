"""The terminal table and the chart of rag.evaluation.report."""

from __future__ import annotations

from rag.evaluation import report
from rag.evaluation.metrics import compare_metrics


def _report(metrics: dict, n: int = 20) -> dict:
    return {"created": "x", "run": {"questions": n}, "settings": {"generator": "extractive", "top_k": 6},
            "dataset": {"multihop_rag": True}, "metrics": {"overall": {"questions": n, **metrics}}}


def test_compare_marks_regressions_red_and_draws_chart(tmp_path):
    from rich.console import Console

    prev = _report({"hits@1": 0.80, "mrr@10": 0.85, "accuracy": 0.30, "total_p50_s": 1.0})
    cur = _report({"hits@1": 0.70, "mrr@10": 0.86, "accuracy": 0.40, "total_p50_s": 1.0})
    cur["compare"] = {"status": {"overall": compare_metrics(cur["metrics"]["overall"], prev["metrics"]["overall"])}}
    console = Console(record=True, width=160, color_system="truecolor", force_terminal=True)
    console.print(report.render_table(cur, prev))
    text = console.export_text(clear=False)
    assert "Hits@1 (article)" in text and "-0.100" in text and "+0.100" in text
    ansi = console.export_text(styles=True)
    assert "\x1b[31m0.700" in ansi  # the regressed cell is red
    assert "\x1b[32m0.400" in ansi  # the improved one green
    png = report.draw_chart(cur, prev, tmp_path / "c.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
