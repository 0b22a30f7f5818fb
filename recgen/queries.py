"""Canned queries that the Datasette plugin offers on a recgen database: every one a plain SELECT.

Datasette 0.65 has no default values for canned-query parameters (a missing one arrives as ''), so the
defaults live in the SQL: `coalesce(nullif(:param, ''), default)`. "The latest published run" is the one
expression of `recgen.schema.LATEST_RUN`, the same one the `latest_*` views use.
"""

from recgen.constants import SOURCE_CONTENT, SOURCE_MODEL, SOURCE_POPULARITY, TOP_K
from recgen.schema import LATEST_RUN

MODEL = "model"  # run_metrics.model_name of the run's own model
BASELINES = ("random", "popularity", "item_mean")


def _pivot_columns(names: tuple[str, ...]) -> str:
    return ",\n  ".join(f"max(CASE WHEN model_name = '{n}' THEN value END) AS {n}" for n in names)


USER_RECOMMENDATIONS = """\
SELECT
  r.rank,
  r.video_id,
  r.score,
  r.source,
  v.caption,
  v.first_level_category_name AS category,
  round(v.video_duration / 1000.0, 1) AS duration_seconds,
  r.run_id
FROM latest_recommendations AS r
LEFT JOIN videos AS v ON v.video_id = r.video_id
WHERE r.user_id = coalesce(
  CAST(nullif(:user_id, '') AS INTEGER),
  (SELECT min(user_id) FROM latest_recommendations)
)
ORDER BY r.rank"""

MODEL_VS_BASELINES = f"""\
SELECT
  metric,
  {_pivot_columns((MODEL, *BASELINES))}
FROM run_metrics
WHERE run_id = coalesce(CAST(nullif(:run_id, '') AS INTEGER), {LATEST_RUN})
GROUP BY metric
ORDER BY metric"""

RUN_HISTORY = f"""\
SELECT
  r.id AS run_id,
  r.status,
  r.started_at,
  r.finished_at,
  round((julianday(r.finished_at) - julianday(r.started_at)) * 86400, 1) AS wall_seconds,
  r.exit_code,
  r.model_name,
  r.model_id,
  CASE r.trained WHEN 1 THEN 'trained' WHEN 0 THEN 'reloaded' END AS model_was,
  r.synthetic,
  r.k,
  r.n_users,
  r.n_videos,
  r.n_train_rows,
  r.n_recommendations,
  r.n_eval_users,
  r.ingest_seconds,
  r.features_seconds,
  r.train_seconds,
  r.recommend_seconds,
  r.evaluate_seconds,
  (SELECT value FROM run_metrics AS m WHERE m.run_id = r.id AND m.model_name = '{MODEL}'
     AND m.metric = 'ndcg@' || coalesce(r.k, {TOP_K})) AS "ndcg@k",
  (SELECT value FROM run_metrics AS m WHERE m.run_id = r.id AND m.model_name = '{MODEL}'
     AND m.metric = 'hit_ratio@' || coalesce(r.k, {TOP_K})) AS "hit_ratio@k",
  r.error
FROM runs AS r
WHERE nullif(:status, '') IS NULL OR r.status = :status
ORDER BY r.id DESC"""

TOP_RECOMMENDED_VIDEOS = """\
SELECT
  r.video_id,
  v.caption,
  v.first_level_category_name AS category,
  round(v.video_duration / 1000.0, 1) AS duration_seconds,
  count(*) AS n_users,
  round(avg(r.rank), 1) AS mean_rank
FROM latest_recommendations AS r
LEFT JOIN videos AS v ON v.video_id = r.video_id
GROUP BY r.video_id
ORDER BY n_users DESC, r.video_id
LIMIT coalesce(CAST(nullif(:limit, '') AS INTEGER), 100)"""

CANNED_QUERIES = {
    "user_recommendations": {
        "title": "A user's current recommendations",
        "description": (
            "The top-k list a user is shown now (the latest published run, through latest_recommendations): "
            "rank (1 = best), model score, source "
            f"({SOURCE_MODEL}, {SOURCE_CONTENT} or {SOURCE_POPULARITY}), and each video's caption, "
            "first-level category and duration in seconds. user_id defaults to the smallest recommended user."
        ),
        "sql": USER_RECOMMENDATIONS,
        "params": ["user_id"],
    },
    "model_vs_baselines": {
        "title": "Model vs baselines",
        "description": (
            "One row per metric, one column per model: the run's model next to the random, popularity and "
            "item_mean baselines, evaluated the same way on the fully observed matrix. run_id defaults to the "
            "latest published run. Error metrics (mae, rmse) are better lower; all others higher."
        ),
        "sql": MODEL_VS_BASELINES,
        "params": ["run_id"],
    },
    "run_history": {
        "title": "Run history",
        "description": (
            "Every run-batch invocation, newest first: status, whether the model was trained or reloaded, "
            "wall time and seconds per stage, counts, and the model's headline metrics at the run's k "
            "(ndcg@k, hit_ratio@k from run_metrics). status filters (running, succeeded, failed, published); "
            "empty shows all."
        ),
        "sql": RUN_HISTORY,
        "params": ["status"],
    },
    "top_recommended_videos": {
        "title": "Most recommended videos",
        "description": (
            "Videos in the most users' current lists (latest published run), with caption, category, "
            "duration in seconds, how many users got each (count) and its mean rank: a quick look at "
            "popularity concentration. limit defaults to 100 rows."
        ),
        "sql": TOP_RECOMMENDED_VIDEOS,
        "params": ["limit"],
    },
}
