"""The evaluate stage: the run's model and the baselines on every cell of the fully observed matrix, by the
metrics contract (recgen.evaluation.metrics), written to `user_metrics` and `run_metrics`."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import pandas as pd
from sqlalchemy import Connection, Engine, func, insert, select

from recgen import __version__
from recgen.constants import BASELINES, RUN_MODEL, STATUS_PUBLISHED, TOP_K
from recgen.evaluation import metrics
from recgen.features import Catalog, Inputs, load_interactions
from recgen.models.baselines import RandomScorer, VideoScorer, baselines
from recgen.models.scorer import Scorer
from recgen.progress import Reporter, as_reporter
from recgen.recommend import top_k
from recgen.store.bulk import insert_frame
from recgen.store.runs import latest_published_run
from recgen.store.schema import run_metrics, runs, user_metrics

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
    def actual(self) -> metrics.ActualOrder:
        """The actual order (by watch_ratio) and its counts: the same for every scorer, so computed once."""
        return metrics.actual_order(self.user_codes, self.videos, self.truth, n_users=self.n_users)


@dataclass(frozen=True)
class Evaluation:
    data: EvalData
    model: dict[str, np.ndarray]  # per-user metrics of the run's model
    run_level: dict[str, dict[str, float]]  # model name -> metric -> value, the model's and the baselines'


@dataclass(frozen=True)
class StoredMetrics:
    """What a run's metrics rows hold, as the publish step and the run's summary need it."""

    n_users: int  # users evaluated (rows of user_metrics)
    run_level: dict[str, dict[str, float]]
    copied_from: int | None = None  # the run whose rows were copied (`reuse_metrics`), None if computed


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


def evaluate(
    engine: Engine,
    inputs: Inputs,
    scorer: Scorer,
    recommended_videos: np.ndarray,
    k: int,
    seed: int,
    others: Sequence[Scorer] = (),
    progress: Reporter | Callable[[str], None] | None = None,
) -> Evaluation:
    """Evaluate the run's model (`scorer`, whose published lists hold `recommended_videos`) next to the
    random, popularity and item-mean baselines and `others` (the seed model), on the fully observed matrix.

    Accuracy metrics per user and their means; beyond accuracy (coverage, popularity, Gini) of the published
    lists, and of the top-k lists the scorer-free baselines would publish for every user with history."""
    data = load_eval_data(engine, inputs.catalog)
    compared = [*baselines(inputs.train, len(inputs.catalog.video_ids), seed), *others]
    per_user = evaluate_all(data, [scorer, *compared], k, progress=progress)
    run_level = {name: summary(values, k) for name, values in per_user.items()}
    run_level[RUN_MODEL].update(beyond_accuracy(recommended_videos, inputs.exposure, k))
    known_users = np.unique(inputs.train.users)
    for other in compared:
        if isinstance(other, VideoScorer | RandomScorer):
            _, other_videos, _ = top_k(other, known_users, *inputs.seen, k=k)
            run_level[other.name].update(beyond_accuracy(other_videos, inputs.exposure, k))
    return Evaluation(data, per_user[RUN_MODEL], run_level)


def evaluate_scorer(data: EvalData, scorer: Scorer, k: int = TOP_K) -> dict[str, np.ndarray]:
    """Per-user metrics of one scorer over every user's evaluation videos (`metrics.user_metrics`)."""
    scores = scorer.score_pairs(data.user_index[data.user_codes], data.videos).astype(np.float64)
    predictions = scores if scorer.predicts_watch_ratio else None
    return metrics.user_metrics_for(data.actual, scores, k, predictions=predictions)


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


def write_metrics(conn: Connection, run_id: int, evaluation: Evaluation) -> StoredMetrics:
    """user_metrics for the run's model, run_metrics for the model and every baseline."""
    frame = pd.DataFrame({"run_id": run_id, "user_id": evaluation.data.user_ids})
    frame["n_items"] = evaluation.model["n_items"].astype(np.int64)
    frame["n_relevant"] = evaluation.model["n_relevant"].astype(np.int64)
    for name in USER_METRICS:
        frame[name] = evaluation.model[name]
    insert_frame(conn, user_metrics, frame)
    rows = [
        (run_id, model_name, metric, value)
        for model_name, values in evaluation.run_level.items()
        for metric, value in values.items()
    ]
    insert_frame(conn, run_metrics, pd.DataFrame(rows, columns=["run_id", "model_name", "metric", "value"]))
    return StoredMetrics(evaluation.data.n_users, evaluation.run_level)


def evaluation_key(data_fingerprint: str, model_ids: Sequence[int], k: int, seed: int, **options: str) -> str:
    """A hash of everything the metrics of a run are a function of: the input files, the saved models
    scored (the run's, then the seed baseline), k, the seed of the random baseline, the `options` that
    shape the published lists (scorer, engine) and recgen's version (the metrics' definitions)."""
    inputs = {"data": data_fingerprint, "models": list(model_ids), "k": k, "seed": seed, "recgen": __version__}
    return hashlib.sha256(json.dumps({**inputs, **options}, sort_keys=True).encode()).hexdigest()


def reuse_metrics(conn: Connection, run_id: int, key: str) -> StoredMetrics | None:
    """Copy the metrics of the newest kept published run with evaluation key `key` to `run_id`: the same
    models on the same data give the same metrics, and a night with nothing new need not rank 5 scorers
    over every cell again. None if no run has the key (the caller evaluates)."""
    source = conn.execute(
        select(func.max(runs.c.id)).where(
            runs.c.evaluation_key == key, runs.c.status == STATUS_PUBLISHED, runs.c.pruned_at.is_(None)
        )
    ).scalar()
    if source is None:
        return None
    copied = {}
    for table in (user_metrics, run_metrics):  # a row per evaluated user and per metric: a few thousand
        rows = conn.execute(select(table).where(table.c.run_id == source)).mappings().all()
        conn.execute(insert(table), [{**row, "run_id": run_id} for row in rows])
        copied[table.name] = rows
    run_level: dict[str, dict[str, float]] = {}
    for row in copied[run_metrics.name]:
        run_level.setdefault(row["model_name"], {})[row["metric"]] = row["value"]
    return StoredMetrics(len(copied[user_metrics.name]), run_level, copied_from=int(source))


def metrics_table(engine: Engine, run_id: int | None = None) -> tuple[int, pd.DataFrame]:
    """run_metrics of a run (default: the latest published one) pivoted to metric x model_name."""
    run_id = latest_published_run(engine) if run_id is None else run_id
    if run_id is None:
        return 0, pd.DataFrame()
    query = select(run_metrics.c.model_name, run_metrics.c.metric, run_metrics.c.value).where(
        run_metrics.c.run_id == run_id
    )
    with engine.connect() as conn:
        frame = pd.DataFrame(conn.execute(query).all(), columns=["model_name", "metric", "value"])
    table = frame.pivot(index="metric", columns="model_name", values="value")
    ordered = [c for c in (RUN_MODEL, *BASELINES) if c in table.columns]
    return run_id, table[ordered + [c for c in table.columns if c not in ordered]]
