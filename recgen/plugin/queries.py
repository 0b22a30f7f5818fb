"""Every SQL text the Datasette plugin runs: the canned queries it offers on a recgen database (each a plain
SELECT) and the queries of its own pages and probes.

Datasette 0.65 has no default values for canned-query parameters (a missing one arrives as ''), so the
defaults live in the SQL: `coalesce(nullif(:param, ''), default)`. "The latest published run" is the one
expression of `recgen.store.schema.LATEST_RUN`, the same one the `latest_*` views use.
"""

from recgen.constants import (
    BASELINES,
    RELEVANT_WATCH_RATIO,
    RUN_MODEL,
    RUN_STATUSES,
    SOURCE_CONTENT,
    SOURCE_MODEL,
    SOURCE_POPULARITY,
    STATUS_PUBLISHED,
    TOP_K,
)
from recgen.report.categories import (
    CATEGORY_VIEWS_PREFIX,
    CATEGORY_VIEWS_SECTION,
    FIRST_LEVEL_ENGLISH,
    NO_CATEGORY,
)
from recgen.store.fts import FTS_TABLE
from recgen.store.fts import QUERY_FUNCTION as FTS_QUERY_FUNCTION
from recgen.store.schema import LATEST_RUN

REJECTED_ROWS = "rejected_rows"
# Knuth's multiplicative hash modulo a prime: a fixed, platform-independent pseudo-random order of videos.
HASH_MULTIPLIER = 2654435761
HASH_MODULUS = 1000003


def _english_names_cte() -> str:
    rows = ",\n    ".join(f"('{name}', '{english}')" for name, english in FIRST_LEVEL_ENGLISH.items())
    return f"english (name, english) AS (\n  VALUES\n    {rows}\n)"


def _pivot_columns(names: tuple[str, ...], alias: str = "") -> str:
    prefix = f"{alias}." if alias else ""
    return ",\n  ".join(f"max(CASE WHEN {prefix}model_name = '{n}' THEN {prefix}value END) AS {n}" for n in names)


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
  {_pivot_columns((RUN_MODEL, *BASELINES))}
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
  (SELECT value FROM run_metrics AS m WHERE m.run_id = r.id AND m.model_name = '{RUN_MODEL}'
     AND m.metric = 'ndcg@' || coalesce(r.k, {TOP_K})) AS "ndcg@k",
  (SELECT value FROM run_metrics AS m WHERE m.run_id = r.id AND m.model_name = '{RUN_MODEL}'
     AND m.metric = 'hit_ratio@' || coalesce(r.k, {TOP_K})) AS "hit_ratio@k",
  r.error
FROM runs AS r
WHERE nullif(:status, '') IS NULL OR r.status = :status
ORDER BY r.id DESC"""

TOP_RECOMMENDED_VIDEOS = """\
WITH per_video AS (
  SELECT video_id, count(*) AS n_users, round(avg(rank), 1) AS mean_rank
  FROM latest_recommendations
  GROUP BY video_id
  ORDER BY n_users DESC, video_id
  LIMIT coalesce(CAST(nullif(:limit, '') AS INTEGER), 100)
)
SELECT
  p.video_id,
  v.caption,
  v.first_level_category_name AS category,
  round(v.video_duration / 1000.0, 1) AS duration_seconds,
  p.n_users,
  p.mean_rank
FROM per_video AS p
LEFT JOIN videos AS v ON v.video_id = p.video_id
ORDER BY p.n_users DESC, p.video_id"""

_USER_PARAM = "CAST(nullif(:user_id, '') AS INTEGER)"

USER_RECOMMENDATIONS_VS_HISTORY = f"""\
WITH
target AS (
  SELECT coalesce({_USER_PARAM}, (SELECT min(user_id) FROM latest_recommendations)) AS user_id
),
recommended AS (
  SELECT r.rank AS position, r.video_id, r.score, v.caption, v.first_level_category_name AS category
  FROM latest_recommendations AS r
  LEFT JOIN videos AS v ON v.video_id = r.video_id
  WHERE r.user_id = (SELECT user_id FROM target)
),
watched AS (
  SELECT
    row_number() OVER (
      ORDER BY
        CASE coalesce(nullif(:history, ''), 'recent')
          WHEN 'top' THEN -t.watch_ratio
          ELSE -coalesce(t.timestamp, 0)
        END,
        t.video_id
    ) AS position,
    t.video_id, t.watch_ratio, t.time, v.caption, v.first_level_category_name AS category
  FROM train_interactions AS t
  LEFT JOIN videos AS v ON v.video_id = t.video_id
  WHERE t.user_id = (SELECT user_id FROM target)
)
SELECT
  (SELECT user_id FROM target) AS user_id,
  rec.position AS rank,
  rec.video_id AS recommended_video_id,
  rec.caption AS recommended_caption,
  rec.category AS recommended_category,
  round(rec.score, 4) AS score,
  w.video_id AS watched_video_id,
  w.caption AS watched_caption,
  w.category AS watched_category,
  round(w.watch_ratio, 3) AS watch_ratio,
  w.time AS watched_at,
  (SELECT count(*) FROM train_interactions WHERE user_id = (SELECT user_id FROM target)) AS history_rows
FROM recommended AS rec
LEFT JOIN watched AS w ON w.position = rec.position
ORDER BY rec.position"""

WHY_VIDEO_RECOMMENDED = f"""\
WITH
target AS (
  SELECT coalesce(
    CAST(nullif(:video_id, '') AS INTEGER),
    (SELECT video_id FROM latest_recommendations WHERE rank = 1 ORDER BY user_id LIMIT 1)
  ) AS video_id
),
run AS (SELECT id, coalesce(k, {TOP_K}) AS k FROM runs WHERE id = {LATEST_RUN}),
recommended AS (
  SELECT user_id, rank, score FROM latest_recommendations WHERE video_id = (SELECT video_id FROM target)
),
train AS (
  SELECT count(*) AS n_views, count(DISTINCT user_id) AS n_users, avg(watch_ratio) AS mean_watch_ratio
  FROM train_interactions WHERE video_id = (SELECT video_id FROM target)
),
eval AS (
  SELECT count(*) AS n_users, avg(watch_ratio) AS mean_watch_ratio
  FROM eval_interactions WHERE video_id = (SELECT video_id FROM target)
),
daily AS (
  SELECT avg(show_cnt) AS show_cnt, avg(play_cnt) AS play_cnt,
    avg(play_cnt) / (avg(show_cnt) + 1) AS engagement_rate,
    avg(complete_play_cnt) / (avg(play_cnt) + 1) AS completion_rate,
    avg(like_cnt) / (avg(play_cnt) + 1) AS like_rate
  FROM video_daily WHERE video_id = (SELECT video_id FROM target)
),
person AS (
  SELECT
    {_USER_PARAM} AS user_id,
    (SELECT count(*) FROM train_interactions
       WHERE user_id = {_USER_PARAM} AND video_id = (SELECT video_id FROM target)) AS seen_rows,
    (SELECT rank FROM recommended WHERE user_id = {_USER_PARAM}) AS rank,
    (SELECT score FROM recommended WHERE user_id = {_USER_PARAM}) AS score,
    (SELECT score FROM latest_recommendations
       WHERE user_id = {_USER_PARAM} AND rank = (SELECT k FROM run)) AS cutoff_score,
    (SELECT count(*) FROM latest_recommendations WHERE user_id = {_USER_PARAM}) AS list_length,
    (SELECT watch_ratio FROM eval_interactions
       WHERE user_id = {_USER_PARAM} AND video_id = (SELECT video_id FROM target)) AS eval_watch_ratio
)
SELECT
  v.video_id,
  v.caption,
  v.first_level_category_name AS category,
  v.second_level_category_name AS subcategory,
  v.tags,
  round(v.video_duration / 1000.0, 1) AS duration_seconds,
  v.upload_dt,
  v.video_type,
  (SELECT count(*) FROM users) AS n_users_total,
  train.n_users AS n_users_seen,
  (SELECT count(*) FROM recommended) AS n_users_recommended,
  (SELECT min(rank) FROM recommended) AS best_rank,
  (SELECT round(avg(rank), 1) FROM recommended) AS mean_rank,
  (SELECT count(*) FROM recommended WHERE rank <= 10) AS n_rank_1_10,
  (SELECT count(*) FROM recommended WHERE rank > 10 AND rank <= 25) AS n_rank_11_25,
  (SELECT count(*) FROM recommended WHERE rank > 25) AS n_rank_26_k,
  (SELECT round(avg(score), 4) FROM recommended) AS mean_score,
  (SELECT round(avg(score), 4) FROM latest_recommendations WHERE rank = (SELECT k FROM run)) AS mean_cutoff_score,
  train.n_views AS train_views,
  round(train.mean_watch_ratio, 3) AS train_mean_watch_ratio,
  eval.n_users AS eval_users,
  round(eval.mean_watch_ratio, 3) AS eval_mean_watch_ratio,
  round(daily.show_cnt, 1) AS daily_show_cnt,
  round(daily.play_cnt, 1) AS daily_play_cnt,
  round(daily.engagement_rate, 4) AS engagement_rate,
  round(daily.completion_rate, 4) AS completion_rate,
  round(daily.like_rate, 4) AS like_rate,
  person.user_id,
  CASE
    WHEN person.user_id IS NULL THEN NULL
    WHEN person.seen_rows > 0 THEN 'seen in training (' || person.seen_rows || ' views): never recommended'
    WHEN person.rank IS NOT NULL THEN 'recommended at rank ' || person.rank
    WHEN person.list_length = 0 THEN 'this user has no recommendations in the latest run'
    ELSE 'not in the top ' || (SELECT k FROM run) || ': its score is below the user''s cutoff'
  END AS verdict_for_user,
  round(person.score, 4) AS user_score,
  round(person.cutoff_score, 4) AS user_cutoff_score,
  round(person.eval_watch_ratio, 3) AS user_eval_watch_ratio
FROM target
JOIN videos AS v ON v.video_id = target.video_id
CROSS JOIN train CROSS JOIN eval CROSS JOIN daily CROSS JOIN person"""

_HAS_PROFILE = (
    f"EXISTS (SELECT 1 FROM data_profile WHERE section = '{CATEGORY_VIEWS_SECTION}' "
    f"AND name LIKE '{CATEGORY_VIEWS_PREFIX}%')"
)
_PROFILED_VIEWS = f"""UNION ALL
  -- All users: the per-category view counts the report stored in data_profile (the live count reads the
  -- whole training log's index, too close to Datasette's time limit on a full-size database).
  SELECT nullif(substr(name, {len(CATEGORY_VIEWS_PREFIX) + 1}), '{NO_CATEGORY}'), CAST(value AS INTEGER)
  FROM data_profile
  WHERE section = '{CATEGORY_VIEWS_SECTION}' AND name LIKE '{CATEGORY_VIEWS_PREFIX}%'
    AND nullif(:user_id, '') IS NULL"""


def _category_mix(profiled: bool) -> str:
    """The category_mix SQL; `profiled` reads the all-users view counts from data_profile when it has them."""
    live_guard = f" AND NOT {_HAS_PROFILE}" if profiled else ""
    return f"""\
WITH
{_english_names_cte()},
rec_per_video AS (
  SELECT video_id, count(*) AS n FROM latest_recommendations
  WHERE nullif(:user_id, '') IS NULL OR user_id = {_USER_PARAM}
  GROUP BY video_id
),
rec AS (
  SELECT v.first_level_category_name AS category, sum(p.n) AS n
  FROM rec_per_video AS p
  JOIN videos AS v ON v.video_id = p.video_id
  GROUP BY 1
),
-- Two branches, so that both use an index: for everybody one count per video on the covering index of
-- video_id (driven by `live`, empty for one user or when data_profile has the counts), for one user the
-- index on user_id.
live AS MATERIALIZED (SELECT 1 AS go WHERE nullif(:user_id, '') IS NULL{live_guard}),
views_per_video AS (
  SELECT v.video_id, (SELECT count(*) FROM train_interactions AS t WHERE t.video_id = v.video_id) AS n
  FROM live CROSS JOIN videos AS v
  UNION ALL
  SELECT video_id, count(*) AS n FROM train_interactions
  WHERE user_id = {_USER_PARAM}
  GROUP BY video_id
),
watched AS (
  SELECT v.first_level_category_name AS category, sum(p.n) AS n
  FROM views_per_video AS p
  JOIN videos AS v ON v.video_id = p.video_id
  GROUP BY 1
  {_PROFILED_VIEWS if profiled else ""}
),
categories AS (SELECT category FROM rec UNION SELECT category FROM watched)
SELECT
  c.category,
  e.english,
  coalesce(rec.n, 0) AS n_recommended,
  round(coalesce(rec.n, 0) * 1.0 / (SELECT sum(n) FROM rec), 4) AS recommended_share,
  coalesce(watched.n, 0) AS n_views,
  round(coalesce(watched.n, 0) * 1.0 / (SELECT sum(n) FROM watched), 4) AS consumed_share,
  round(
    (coalesce(rec.n, 0) * 1.0 / (SELECT sum(n) FROM rec)) / (watched.n * 1.0 / (SELECT sum(n) FROM watched)), 2
  ) AS lift
FROM categories AS c
LEFT JOIN rec ON rec.category IS c.category
LEFT JOIN watched ON watched.category IS c.category
LEFT JOIN english AS e ON e.name = c.category
ORDER BY recommended_share DESC, consumed_share DESC, c.category"""


CATEGORY_MIX = _category_mix(profiled=False)
CATEGORY_MIX_PROFILED = _category_mix(profiled=True)

_WORST_ORDER = """CASE coalesce(nullif(:metric, ''), 'ndcg')
      WHEN 'hit_ratio' THEN hit_ratio
      WHEN 'precision' THEN precision
      WHEN 'recall' THEN recall
      WHEN 'spearman' THEN spearman
      ELSE ndcg
    END"""

WORST_SERVED_USERS = f"""\
WITH worst AS (
  SELECT *, {_WORST_ORDER} AS sort_value
  FROM latest_user_metrics
  ORDER BY sort_value IS NULL, sort_value, user_id
  LIMIT coalesce(CAST(nullif(:limit, '') AS INTEGER), 50)
)
SELECT
  w.user_id,
  round(w.ndcg, 4) AS ndcg,
  round(w.hit_ratio, 4) AS hit_ratio,
  round(w.precision, 4) AS precision,
  round(w.recall, 4) AS recall,
  round(w.spearman, 4) AS spearman,
  w.n_items,
  w.n_relevant,
  (SELECT count(*) FROM train_interactions AS t WHERE t.user_id = w.user_id) AS history_rows,
  (SELECT round(avg(watch_ratio), 3) FROM train_interactions AS t WHERE t.user_id = w.user_id)
    AS history_mean_watch_ratio,
  (SELECT round(avg(watch_ratio), 3) FROM eval_interactions AS e WHERE e.user_id = w.user_id)
    AS eval_mean_watch_ratio,
  u.user_active_degree,
  u.register_days
FROM worst AS w
LEFT JOIN users AS u ON u.user_id = w.user_id
ORDER BY w.sort_value IS NULL, w.sort_value, w.user_id"""

_BEST_BASELINE = """(
    SELECT CASE WHEN m.metric LIKE 'mae%' OR m.metric LIKE 'rmse%' THEN min(b.value) ELSE max(b.value) END
    FROM run_metrics AS b
    WHERE b.run_id = r.id AND b.metric = m.metric AND b.model_name IN ({baselines})
  )"""

MODEL_VS_BASELINES_OVER_RUNS = f"""\
SELECT
  r.id AS run_id,
  r.finished_at,
  r.model_name AS model_family,
  CASE r.trained WHEN 1 THEN 'trained' WHEN 0 THEN 'reloaded' END AS model_was,
  r.synthetic,
  m.metric,
  {_pivot_columns((RUN_MODEL, *BASELINES), "m")},
  round(
    CASE WHEN m.metric LIKE 'mae%' OR m.metric LIKE 'rmse%'
      THEN {_BEST_BASELINE.format(baselines=", ".join(f"'{b}'" for b in BASELINES))}
        - max(CASE WHEN m.model_name = '{RUN_MODEL}' THEN m.value END)
      ELSE max(CASE WHEN m.model_name = '{RUN_MODEL}' THEN m.value END)
        - {_BEST_BASELINE.format(baselines=", ".join(f"'{b}'" for b in BASELINES))}
    END, 4
  ) AS margin_over_best_baseline
FROM runs AS r
JOIN run_metrics AS m ON m.run_id = r.id
WHERE r.status = 'published'
  AND m.metric = coalesce(nullif(:metric, ''), 'ndcg@' || coalesce(r.k, {TOP_K}))
GROUP BY r.id, m.metric
ORDER BY r.id DESC"""

# The catalogue-level rows have a value for the model only: one NULL per baseline column.
_NULL_BASELINES = ", ".join("NULL" for _ in BASELINES)

POPULARITY_BIAS = f"""\
WITH
run AS (
  SELECT id, coalesce(k, {TOP_K}) AS k, n_train_rows, n_videos, n_users
  FROM runs WHERE id = coalesce(CAST(nullif(:run_id, '') AS INTEGER), {LATEST_RUN})
),
per_video AS (
  SELECT video_id, count(*) AS n FROM recommendations WHERE run_id = (SELECT id FROM run) GROUP BY video_id
),
ranked AS (SELECT n, row_number() OVER (ORDER BY n DESC, video_id) AS position FROM per_video),
exposure AS (
  SELECT p.n AS n_lists, (SELECT count(*) FROM train_interactions AS t WHERE t.video_id = p.video_id) AS views
  FROM per_video AS p
),
totals AS (SELECT sum(n) AS n FROM per_video)
SELECT
  (SELECT id FROM run) AS run_id,
  m.metric,
  'from run_metrics: model next to the baselines' AS note,
  {_pivot_columns((RUN_MODEL, *BASELINES))}
FROM run_metrics AS m
WHERE m.run_id = (SELECT id FROM run)
  AND (m.metric LIKE 'coverage@%' OR m.metric LIKE 'popularity_percentile@%' OR m.metric LIKE 'gini@%')
GROUP BY m.metric
UNION ALL
SELECT (SELECT id FROM run), 'distinct_videos_recommended', 'videos in at least one list (count)',
  (SELECT count(*) FROM per_video),
  {_NULL_BASELINES}
UNION ALL
SELECT (SELECT id FROM run), 'catalogue_videos', 'videos in the catalogue (count)',
  (SELECT n_videos FROM run),
  {_NULL_BASELINES}
UNION ALL
SELECT (SELECT id FROM run), 'share_of_slots_top_10_videos',
  'share of all list slots taken by the 10 most recommended videos',
  round((SELECT sum(n) FROM ranked WHERE position <= 10) * 1.0 / (SELECT n FROM totals), 4),
  {_NULL_BASELINES}
UNION ALL
SELECT (SELECT id FROM run), 'max_users_per_video', 'users whose list holds the most recommended video (count)',
  (SELECT max(n) FROM per_video),
  {_NULL_BASELINES}
UNION ALL
SELECT (SELECT id FROM run), 'mean_training_views_recommended',
  'training views of a recommended video, averaged over list slots (count)',
  round((SELECT sum(n_lists * views) * 1.0 / sum(n_lists) FROM exposure), 1),
  {_NULL_BASELINES}
UNION ALL
SELECT (SELECT id FROM run), 'mean_training_views_catalogue', 'training views per catalogue video (count)',
  round((SELECT n_train_rows * 1.0 / n_videos FROM run), 1),
  {_NULL_BASELINES}"""

TOP_K_VS_RANDOM = f"""\
WITH RECURSIVE
run AS (SELECT coalesce(k, {TOP_K}) AS k FROM runs WHERE id = {LATEST_RUN}),
-- The small matrix's videos by a skip-scan of the video_id index: one seek per video, not 4.7M rows.
small_videos (video_id) AS (
  SELECT min(video_id) FROM eval_interactions
  UNION ALL
  SELECT (SELECT min(video_id) FROM eval_interactions WHERE video_id > s.video_id)
  FROM small_videos AS s WHERE s.video_id IS NOT NULL
),
shuffled AS MATERIALIZED (
  SELECT video_id,
    row_number() OVER (ORDER BY (video_id * {HASH_MULTIPLIER}) % {HASH_MODULUS}, video_id) - 1 AS position,
    count(*) OVER () AS n
  FROM small_videos WHERE video_id IS NOT NULL
),
offsets (j) AS (SELECT 0 UNION ALL SELECT j + 1 FROM offsets WHERE j + 1 < (SELECT k FROM run)),
fully_observed AS (
  SELECT user_id FROM latest_user_metrics
  WHERE nullif(:user_id, '') IS NULL OR user_id = {_USER_PARAM}
),
published AS (
  SELECT e.user_id, e.watch_ratio
  FROM fully_observed AS u
  JOIN latest_recommendations AS r ON r.user_id = u.user_id
  JOIN eval_interactions AS e ON e.user_id = r.user_id AND e.video_id = r.video_id
),
-- Each user's k videos: a window of the fixed pseudo-random order of the small matrix's videos, starting at
-- a position derived from the user id (a deterministic random sample without sorting 4.7M rows).
n_small AS (SELECT count(*) AS n FROM shuffled),
picks AS (
  SELECT u.user_id, ((u.user_id * {HASH_MULTIPLIER}) % {HASH_MODULUS} + o.j) % (SELECT n FROM n_small) AS position
  FROM fully_observed AS u CROSS JOIN offsets AS o
),
-- CROSS JOIN fixes the join order (picks, then their videos, then one index seek each): SQLite would
-- otherwise start from the 4.7M evaluation rows.
random AS (
  SELECT e.user_id, e.watch_ratio
  FROM picks AS p
  CROSS JOIN shuffled AS s
  CROSS JOIN eval_interactions AS e
  WHERE s.position = p.position AND e.user_id = p.user_id AND e.video_id = s.video_id
),
lists (list, user_id, watch_ratio) AS (
  SELECT 'published top-k (in the small matrix)', user_id, watch_ratio FROM published
  UNION ALL
  SELECT 'random k of the small matrix', user_id, watch_ratio FROM random
)
SELECT
  list,
  count(DISTINCT user_id) AS n_users,
  count(*) AS n_pairs,
  round(count(*) * 1.0 / count(DISTINCT user_id), 1) AS pairs_per_user,
  round(avg(watch_ratio), 4) AS mean_watch_ratio,
  round(avg(min(watch_ratio, 5.0)), 4) AS mean_capped_watch_ratio,
  round(avg(watch_ratio > 1.0), 4) AS share_above_1,
  round(avg(watch_ratio > {RELEVANT_WATCH_RATIO}), 4) AS share_relevant
FROM lists
GROUP BY list
ORDER BY list"""

REJECTED_ROWS_BY_REASON = f"""\
SELECT
  file,
  reason,
  count(*) AS n_rows,
  min(line) AS first_line,
  max(line) AS last_line
FROM {REJECTED_ROWS}
WHERE nullif(:file, '') IS NULL OR file = :file
GROUP BY file, reason
ORDER BY n_rows DESC, file, reason"""

WHO_GETS_VIDEOS_ABOUT = f"""\
WITH
matches AS (
  SELECT rowid AS video_id, rank AS relevance
  FROM {FTS_TABLE}
  WHERE {FTS_TABLE} MATCH {FTS_QUERY_FUNCTION}(coalesce(nullif(:q, ''), '美食'))
),
recommended AS (
  SELECT r.video_id, r.user_id, r.rank,
    row_number() OVER (PARTITION BY r.video_id ORDER BY r.rank, r.user_id) AS position
  FROM latest_recommendations AS r
  JOIN matches AS m ON m.video_id = r.video_id
),
first_users AS (
  SELECT video_id, group_concat(user_id || ' (#' || rank || ')', ', ') AS users
  FROM (SELECT * FROM recommended WHERE position <= 20 ORDER BY video_id, position)
  GROUP BY video_id
)
SELECT
  m.video_id,
  v.caption,
  v.manual_cover_text AS cover_text,
  v.first_level_category_name AS category,
  v.second_level_category_name AS subcategory,
  (SELECT count(*) FROM recommended AS r WHERE r.video_id = m.video_id) AS n_users,
  (SELECT min(rank) FROM recommended AS r WHERE r.video_id = m.video_id) AS best_rank,
  (SELECT round(avg(rank), 1) FROM recommended AS r WHERE r.video_id = m.video_id) AS mean_rank,
  f.users AS first_users
FROM matches AS m
JOIN videos AS v ON v.video_id = m.video_id
LEFT JOIN first_users AS f ON f.video_id = m.video_id
ORDER BY n_users DESC, m.relevance, m.video_id
LIMIT coalesce(CAST(nullif(:limit, '') AS INTEGER), 100)"""

# ---------------------------------------------------------------- the SQL of the plugin's own pages and probes

TABLE_NAMES = "SELECT name FROM sqlite_master WHERE type IN ('table', 'view')"
HAS_DATA_PROFILE = "SELECT 1 FROM sqlite_master WHERE name = 'data_profile'"
LATEST_RUN_ROW = f"SELECT * FROM runs WHERE id = {LATEST_RUN}"
PUBLISHED_RUN_METRICS = (
    "SELECT r.id AS run_id, m.model_name, m.metric, m.value FROM runs AS r "
    f"JOIN run_metrics AS m ON m.run_id = r.id WHERE r.status = '{STATUS_PUBLISHED}' ORDER BY r.id"
)
LATEST_HEADLINE_PER_USER = "SELECT ndcg, hit_ratio FROM latest_user_metrics"
LATEST_SLOTS_PER_VIDEO = "SELECT count(*) AS n FROM latest_recommendations GROUP BY video_id"
LATEST_RUN_MODEL_METRICS = "SELECT metric, value FROM latest_run_metrics WHERE model_name = ?"
USER_PROFILE = "SELECT * FROM users WHERE user_id = ?"
USER_VIEWS_BY_CATEGORY = (
    "SELECT v.first_level_category_name AS category, count(*) AS views, avg(t.watch_ratio) AS mean_wr "
    "FROM train_interactions AS t LEFT JOIN videos AS v ON v.video_id = t.video_id "
    "WHERE t.user_id = ? GROUP BY 1 ORDER BY views DESC"
)
USER_RECENT_VIEWS = (
    "SELECT t.video_id, t.time, t.watch_ratio, v.caption, v.first_level_category_name AS category "
    "FROM train_interactions AS t LEFT JOIN videos AS v ON v.video_id = t.video_id "
    "WHERE t.user_id = ? ORDER BY t.timestamp DESC, t.video_id LIMIT ?"
)
USER_LATEST_METRICS = "SELECT * FROM latest_user_metrics WHERE user_id = ?"
USER_EVAL_SUMMARY = "SELECT count(*) AS n, avg(watch_ratio) AS mean_wr FROM eval_interactions WHERE user_id = ?"

# Canned queries with a faster SQL when a table exists: name -> (table, SQL).
VARIANTS = {"category_mix": ("data_profile", CATEGORY_MIX_PROFILED)}

# Canned queries that read a table recgen does not always have: offered only when it exists.
REQUIRED_TABLES = {
    "who_gets_videos_about": frozenset({FTS_TABLE}),
}

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
            f"(ndcg@k, hit_ratio@k from run_metrics). status filters ({', '.join(RUN_STATUSES)}); "
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
    "user_recommendations_vs_history": {
        "title": "A user's recommendations next to what they watched",
        "description": (
            "Side by side, position by position: the user's current top-k (latest published run) and their "
            "training history (big_matrix), most recent views first (history=recent, the default) or their "
            "highest watch ratios first (history=top). watch_ratio is play time / video length (ratio); "
            "history_rows is the size of the user's training log (count). user_id defaults to the smallest "
            "recommended user."
        ),
        "sql": USER_RECOMMENDATIONS_VS_HISTORY,
        "params": ["user_id", "history"],
    },
    "why_video_recommended": {
        "title": "Why a video is (not) recommended, and to whom",
        "description": (
            "One row about a video in the latest published run: its features (category, tags, duration in "
            "seconds, daily platform rates), how many users already saw it in training (such users can never "
            "get it), how many got it and at which ranks, its scores next to the mean score at rank k (the bar "
            "a video must clear), and its mean watch ratio in training and in the fully observed matrix. With "
            "user_id, a verdict for that user: seen, recommended at rank r, or scored below their cutoff. "
            "video_id defaults to the first user's rank-1 video."
        ),
        "sql": WHY_VIDEO_RECOMMENDED,
        "params": ["video_id", "user_id"],
    },
    "category_mix": {
        "title": "Category mix: recommended vs consumed",
        "description": (
            "Share of each first-level category in the latest published recommendations next to its share "
            "of training views (big_matrix rows); lift = recommended share / consumed share (> 1: "
            "over-recommended). English names are recgen's translation. user_id restricts both sides to one "
            "user; empty means all users (slower: it counts the whole training log)."
        ),
        "sql": CATEGORY_MIX,
        "params": ["user_id"],
    },
    "worst_served_users": {
        "title": "Worst-served users",
        "description": (
            "Fully observed users with the lowest per-user metric in the latest published run (metric: ndcg, "
            "the default, hit_ratio, precision, recall or spearman; all 0..1 except spearman -1..1), with the "
            "size of their training history (rows), their mean watch ratio in training and in the evaluation "
            "matrix (ratio), activity level and days since registration. limit defaults to 50 users."
        ),
        "sql": WORST_SERVED_USERS,
        "params": ["metric", "limit"],
    },
    "model_vs_baselines_over_runs": {
        "title": "Model vs baselines across published runs",
        "description": (
            "One metric over every published run, newest first: the run's model next to the random, "
            "popularity and item_mean baselines, and the model's margin over the best baseline (positive: "
            "the model is better; for mae and rmse lower is better and the sign is flipped). metric defaults "
            "to ndcg@k at each run's k, e.g. hit_ratio@50, coverage@50, mae."
        ),
        "sql": MODEL_VS_BASELINES_OVER_RUNS,
        "params": ["metric"],
    },
    "popularity_bias": {
        "title": "Popularity bias and coverage",
        "description": (
            "How concentrated a run's recommendations are: catalogue coverage, mean popularity percentile and "
            "Gini of the model next to the baselines (from run_metrics, 0..1), then from the run's lists: "
            "distinct videos recommended, the share of list slots taken by the 10 most recommended videos, "
            "the most users any one video reaches, and the training views of recommended videos next to the "
            "catalogue mean (counts). run_id defaults to the latest published run."
        ),
        "sql": POPULARITY_BIAS,
        "params": ["run_id"],
    },
    "fully_observed_top_k_vs_random": {
        "title": "Fully observed users: how the published top-k was really watched",
        "description": (
            "For the users of the fully observed small_matrix, the real watch ratio (eval_interactions) of "
            "their published top-k videos that lie in the small matrix, against k pseudo-random small-matrix "
            "videos of the same users (a fixed hash order, so every run compares against the same sample). "
            "Columns: users, pairs found, mean watch ratio, mean of min(watch_ratio, 5), share above 1 and "
            "share above 2 (relevant). user_id restricts to one user; empty means all of them."
        ),
        "sql": TOP_K_VS_RANDOM,
        "params": ["user_id"],
    },
    "rejected_rows_by_reason": {
        "title": "Rejected input rows by reason",
        "description": (
            "Rows of the KuaiRec files that ingest refused, grouped by file and reason, with the first and "
            "last line number (1 = the header) of each group. file filters to one file, e.g. big_matrix.csv."
        ),
        "sql": REJECTED_ROWS_BY_REASON,
        "params": ["file"],
    },
    "who_gets_videos_about": {
        "title": "Who gets videos about ...",
        "description": (
            "Full-text search over video captions, cover text, topic tags and category names (videos_fts; "
            "Chinese words match character sequences, Latin words case-insensitively; every word must occur), "
            "then who has the matching videos in their current list: users (count), best and mean rank, and "
            "the first 20 users as 'user (#rank)'. q defaults to 美食 (food); limit to 100 videos."
        ),
        "sql": WHO_GETS_VIDEOS_ABOUT,
        "params": ["q", "limit"],
    },
}
