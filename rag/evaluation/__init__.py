"""``byline eval``: score Byline's retrieval, answers and citations on a question set.

- ``datasets``: question files (reading, sampling), default dataset location, evidence -> article ids
- ``normalize``: answer text normalisation and the refusal checks the metrics use
- ``metrics``: per-question scores, aggregation, comparison with an earlier run
- ``runner``: the run itself (temporary index, checkpoint, report), given a corpus indexer from ``ingest``
- ``report``: the terminal table and the PNG chart
"""

from __future__ import annotations

from rag.evaluation.datasets import (
    CORPUS_FILES,
    DATASET_ATTRIBUTION,
    DEFAULT_DATASET_DIRS,
    NULL_TYPES,
    QUESTION_FILE,
    EvalQuestion,
    EvidenceMap,
    load_questions,
    normalize_url,
    question_from_record,
    read_records,
    resolve_inputs,
    sample_questions,
)
from rag.evaluation.metrics import (
    HIGHER_IS_BETTER,
    LOWER_IS_BETTER,
    QuestionResult,
    aggregate,
    aggregate_by_type,
    answer_correct,
    answer_correct_lenient,
    article_hit_flags,
    article_recall,
    citation_scores,
    compare_metrics,
    fact_hit_flags,
    first_hit_rank,
    gold_kind,
    hits_at,
    map_at,
    mean,
    mrr_at,
    percentile,
    refusal_cause,
    score_question,
    yes_no_label,
)
from rag.evaluation.normalize import REFUSAL_GOLD, is_refusal_gold, looks_like_refusal, normalize_answer, squash
from rag.evaluation.report import CHART_METRICS, TABLE_ROWS, draw_chart, render_table
from rag.evaluation.runner import (
    RETRIEVAL_K,
    Checkpoint,
    CorpusIndexer,
    EvalOutcome,
    EvalRequest,
    IndexedCorpus,
    evaluate,
    run_eval,
    run_questions,
    temp_index,
)

__all__ = [
    "CHART_METRICS", "CORPUS_FILES", "DATASET_ATTRIBUTION", "DEFAULT_DATASET_DIRS", "HIGHER_IS_BETTER", "LOWER_IS_BETTER",
    "NULL_TYPES", "QUESTION_FILE", "REFUSAL_GOLD", "RETRIEVAL_K", "TABLE_ROWS",
    "Checkpoint", "CorpusIndexer", "EvalOutcome", "EvalQuestion", "EvalRequest", "EvidenceMap", "IndexedCorpus", "QuestionResult",
    "aggregate", "aggregate_by_type", "answer_correct", "answer_correct_lenient", "article_hit_flags", "article_recall",
    "citation_scores", "compare_metrics", "draw_chart", "evaluate", "fact_hit_flags", "first_hit_rank", "gold_kind", "hits_at",
    "is_refusal_gold", "load_questions", "looks_like_refusal", "map_at", "mean", "mrr_at", "normalize_answer", "normalize_url",
    "percentile", "question_from_record", "read_records", "refusal_cause", "render_table", "resolve_inputs",
    "run_eval", "run_questions", "sample_questions", "score_question", "squash", "temp_index", "yes_no_label",
]
