"""Evaluation on the fully observed matrix, per the metrics contract (DESIGN.md), for a model and baselines."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import pandas as pd
from sqlalchemy import Connection, Engine, text

from recgen.constants import NDCG_GAIN_CAP, RELEVANT_WATCH_RATIO, TOP_K
from recgen.evaluation import metrics
from recgen.features import Catalog, load_interactions
from recgen.progress import Reporter, as_reporter
from recgen.recommend import Scorer
from recgen.store.engine import insert_frame
from recgen.store.schema import run_metrics, user_metrics

# Per-user metrics that are written to user_metrics and averaged into run_metrics.
USER_METRICS = ("hit_ratio", "ndcg", "seed_ndcg", "precision", "recall", "mae", "rmse", "spearman")
AT_K = ("hit_ratio", "ndcg", "seed_ndcg", "precision", "recall")  # named metric@k in run_metrics


@dataclass(frozen=True)
class EvalData:
    """The evaluation cells: dense user codes (0..n_users-1), video indexes and observed watch ratios."""

    user_codes: np.ndarray
    user_ids: np.ndarray  # user id of each code
    user_index: np.ndarray  # catalogue index of each code
    videos: np.ndarray
    truth: np.ndarray

    @property
    def n_users(self) -> int:
        return len(self.user_ids)

    @cached_property
    def actual(self) -> _ActualOrder:
        """The actual order (by watch_ratio) and its counts: the same for every scorer, so computed once."""
        return _ActualOrder.of(self)


@dataclass(frozen=True)
class _ActualOrder:
    n_items: np.ndarray  # cells per user
    relevant: np.ndarray  # truth > RELEVANT_WATCH_RATIO, per cell
    true_pos: np.ndarray  # position in the user's list by watch_ratio (ties by video)
    truth_ranks: np.ndarray  # centred average ranks of watch_ratio, for spearman

    @classmethod
    def of(cls, data: EvalData) -> _ActualOrder:
        users, n_users = metrics._as_users(data.user_codes, data.n_users)
        truth = metrics._as_truth(data.truth, users.size)
        true_pos, truth_ranks = metrics._rank(users, truth, data.videos.astype(np.int64), n_users, average=True)
        return cls(np.bincount(users, minlength=n_users), truth > RELEVANT_WATCH_RATIO, true_pos, truth_ranks)


def load_eval_data(engine: Engine, catalog: Catalog) -> EvalData:
    cells = load_interactions(engine, catalog, "eval_interactions")
    codes, uniques = pd.factorize(cells.users, sort=True)
    return EvalData(
        user_codes=codes.astype(np.int64),
        user_ids=catalog.user_ids[uniques],
        user_index=np.asarray(uniques, dtype=np.int32),
        videos=cells.videos,
        truth=cells.watch_ratio.astype(np.float64),
    )


def evaluate_scorer(data: EvalData, scorer: Scorer, k: int = TOP_K) -> dict[str, np.ndarray]:
    """Per-user metrics of one scorer over every user's evaluation videos.

    Equal to `metrics.user_metrics` on the same cells (tested); the actual order by watch_ratio, half of
    its work, is computed once per `EvalData` and shared by every scorer.
    """
    scores = scorer.score_pairs(data.user_index[data.user_codes], data.videos).astype(np.float64)
    if np.isnan(scores).any():
        raise ValueError("scores contains NaN")
    k = metrics._check_k(k)
    users, n_users, truth, actual = data.user_codes, data.n_users, data.truth, data.actual
    pred_pos, score_ranks = metrics._rank(users, scores, data.videos.astype(np.int64), n_users, average=True)
    n_items = actual.n_items
    result = {
        "hit_ratio": metrics._hit_ratio(users, pred_pos, actual.true_pos, k, n_items),
        "ndcg": metrics._ndcg(users, pred_pos, actual.true_pos, truth, k, NDCG_GAIN_CAP, n_items),
        "seed_ndcg": metrics._seed_ndcg(users, pred_pos, truth, k, n_items),
        "precision": metrics._precision(users, pred_pos, actual.relevant, k, n_items),
        "recall": metrics._recall(users, pred_pos, actual.relevant, k, n_items),
        "spearman": metrics._pearson_of_ranks(users, score_ranks, actual.truth_ranks, n_users),
    }
    if scorer.predicts_watch_ratio:
        errors = scores - truth
        result["mae"] = metrics._mean_error(users, np.abs(errors), n_items)
        result["rmse"] = np.sqrt(metrics._mean_error(users, np.square(errors), n_items))
    else:
        result["mae"] = np.full(n_users, np.nan)
        result["rmse"] = np.full(n_users, np.nan)
    result["n_items"] = n_items
    result["n_relevant"] = np.bincount(users[actual.relevant], minlength=n_users)
    return result


def summary(per_user: dict[str, np.ndarray], k: int) -> dict[str, float]:
    """Run-level values: the mean over users of each per-user metric (users where it is undefined skipped)."""
    out = {}
    for name in USER_METRICS:
        values = per_user[name]
        if np.isnan(values).all():
            continue
        out[f"{name}@{k}" if name in AT_K else name] = float(np.nanmean(values))
    return out


def beyond_accuracy(rec_videos: np.ndarray, popularity: np.ndarray, k: int) -> dict[str, float]:
    """Catalogue-level metrics of published lists: coverage, mean popularity percentile, Gini."""
    n_catalog = len(popularity)
    return {
        f"coverage@{k}": metrics.catalog_coverage(rec_videos, n_catalog),
        f"popularity_percentile@{k}": metrics.popularity_percentile(rec_videos, popularity),
        f"gini@{k}": metrics.gini(rec_videos, n_catalog),
    }


def user_metric_frame(run_id: int, data: EvalData, per_user: dict[str, np.ndarray]) -> pd.DataFrame:
    frame = pd.DataFrame({"run_id": run_id, "user_id": data.user_ids})
    frame["n_items"] = per_user["n_items"].astype(np.int64)
    frame["n_relevant"] = per_user["n_relevant"].astype(np.int64)
    for name in USER_METRICS:
        frame[name] = per_user[name]
    return frame


def write_metrics(
    conn: Connection,
    run_id: int,
    data: EvalData,
    model_per_user: dict[str, np.ndarray],
    run_level: dict[str, dict[str, float]],
) -> None:
    """user_metrics for the run's model, run_metrics for the model and every baseline."""
    insert_frame(conn, user_metrics, user_metric_frame(run_id, data, model_per_user))
    rows = [
        (run_id, model_name, metric, value)
        for model_name, values in run_level.items()
        for metric, value in values.items()
    ]
    insert_frame(conn, run_metrics, pd.DataFrame(rows, columns=["run_id", "model_name", "metric", "value"]))


def metrics_table(engine: Engine, run_id: int | None = None) -> tuple[int, pd.DataFrame]:
    """run_metrics of a run (default: the latest published one) pivoted to metric x model_name."""
    with engine.connect() as conn:
        if run_id is None:
            run_id = conn.execute(text("SELECT max(id) FROM runs WHERE status = 'published'")).scalar()
        if run_id is None:
            return 0, pd.DataFrame()
        frame = pd.read_sql_query(
            text("SELECT model_name, metric, value FROM run_metrics WHERE run_id = :run"), conn, params={"run": run_id}
        )
    table = frame.pivot(index="metric", columns="model_name", values="value")
    ordered = [c for c in ("model", "seed", "item_mean", "popularity", "random") if c in table.columns]
    return run_id, table[ordered + [c for c in table.columns if c not in ordered]]


def evaluate_all(
    data: EvalData,
    scorers: Sequence[Scorer],
    k: int = TOP_K,
    progress: Reporter | Callable[[str], None] | None = None,
) -> dict[str, dict[str, np.ndarray]]:
    """Per-user metrics of each scorer, keyed by its name; a line per scorer (and a bar with a Reporter)."""
    reporter = as_reporter(progress)
    tick = reporter.progress("evaluating", len(scorers), "models")
    results = {}
    for done, scorer in enumerate(scorers, start=1):
        results[scorer.name] = evaluate_scorer(data, scorer, k)
        values = summary(results[scorer.name], k)
        reporter.log(f"{scorer.name}: ndcg@{k} {values[f'ndcg@{k}']:.4f}, hit_ratio@{k} {values[f'hit_ratio@{k}']:.4f}")
        tick(done)
    return results
