"""Evaluation on the fully observed matrix: the metrics (pure numpy functions) and the stage's one entry
point, `evaluate`, with `write_metrics` to store its result and `metrics_table` to read a run's back."""

from recgen.evaluation.evaluator import EvalData, Evaluation, evaluate, load_eval_data, metrics_table, write_metrics

__all__ = ["EvalData", "Evaluation", "evaluate", "load_eval_data", "metrics_table", "write_metrics"]
