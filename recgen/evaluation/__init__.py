"""Evaluation on the fully observed matrix: the metrics (pure numpy functions) and the stage's one entry
point, `evaluate`, with `write_metrics` to store its result, `reuse_metrics` to copy an earlier run's when
nothing they depend on changed (`evaluation_key`), and `metrics_table` to read a run's back."""

from recgen.evaluation.evaluator import (
    EvalData,
    Evaluation,
    StoredMetrics,
    evaluate,
    evaluation_key,
    load_eval_data,
    metrics_table,
    reuse_metrics,
    write_metrics,
)

__all__ = [
    "EvalData",
    "Evaluation",
    "StoredMetrics",
    "evaluate",
    "evaluation_key",
    "load_eval_data",
    "metrics_table",
    "reuse_metrics",
    "write_metrics",
]
