"""Data and charts of the plugin's pages (dashboard, user page), read from a recgen SQLite file read-only.

Each function opens its own `mode=ro` connection, runs a handful of the canned queries' SQL and renders the
charts; the result is cached per database file state (`signature`: mtime and size of the file and its WAL),
so a page is computed once per run or ingest, not once per visit. Pure functions of the file: the tests and
the plugin call them the same way.
"""

from __future__ import annotations

import sqlite3
from functools import lru_cache
from pathlib import Path

import numpy as np

from recgen.constants import BASELINES, RUN_MODEL, TOP_K
from recgen.plugin.queries import (
    CATEGORY_MIX,
    CATEGORY_MIX_PROFILED,
    HAS_DATA_PROFILE,
    LATEST_HEADLINE_PER_USER,
    LATEST_RUN_MODEL_METRICS,
    LATEST_RUN_ROW,
    LATEST_SLOTS_PER_VIDEO,
    MODEL_VS_BASELINES,
    POPULARITY_BIAS,
    PUBLISHED_RUN_METRICS,
    USER_EVAL_SUMMARY,
    USER_LATEST_METRICS,
    USER_PROFILE,
    USER_RECENT_VIEWS,
    USER_RECOMMENDATIONS,
    USER_VIEWS_BY_CATEGORY,
    WORST_SERVED_USERS,
)
from recgen.report import charts
from recgen.report.categories import english_category
from recgen.store import fts

HEADLINE = ("ndcg", "hit_ratio")  # per-user metrics charted on the dashboard
CONCENTRATION = ("coverage", "popularity_percentile", "gini")
TOP_CATEGORIES = 15
RECENT_VIEWS = 20


def _connect(path: str) -> sqlite3.Connection:
    conn = sqlite3.connect(f"{Path(path).resolve().as_uri()}?mode=ro", uri=True, check_same_thread=False)
    conn.row_factory = sqlite3.Row
    fts.register_functions(conn)
    return conn


def _rows(conn: sqlite3.Connection, sql: str, params=()) -> list[dict]:
    return [dict(row) for row in conn.execute(sql, params).fetchall()]


def _latest_run(conn: sqlite3.Connection) -> dict | None:
    row = conn.execute(LATEST_RUN_ROW).fetchone()
    return dict(row) if row else None


@lru_cache(maxsize=8)
def dashboard(path: str, signature: tuple) -> dict:
    """Everything the dashboard shows; {"run": None} before the first published run."""
    del signature  # part of the cache key only
    conn = _connect(path)
    try:
        run = _latest_run(conn)
        if run is None:
            return {"run": None}
        k = run["k"] or TOP_K
        metrics = _rows(conn, MODEL_VS_BASELINES, {"run_id": ""})
        history = _rows(conn, PUBLISHED_RUN_METRICS)
        per_user = _rows(conn, LATEST_HEADLINE_PER_USER)
        slots = [r["n"] for r in _rows(conn, LATEST_SLOTS_PER_VIDEO)]
        profiled = conn.execute(HAS_DATA_PROFILE).fetchone()
        mix = _rows(conn, CATEGORY_MIX_PROFILED if profiled else CATEGORY_MIX, {"user_id": ""})
        worst = _rows(conn, WORST_SERVED_USERS, {"metric": "", "limit": "10"})
        bias = _rows(conn, POPULARITY_BIAS, {"run_id": ""})
    finally:
        conn.close()

    run_ids = sorted({r["run_id"] for r in history})
    headline = [f"{name}@{k}" for name in HEADLINE]
    series: dict[str, dict[str, list]] = {metric: {} for metric in headline}
    for metric in headline:
        for model in (RUN_MODEL, *BASELINES):
            values = {r["run_id"]: r["value"] for r in history if r["metric"] == metric and r["model_name"] == model}
            if values:
                series[metric][model] = [values.get(run_id) for run_id in run_ids]
    images = {
        "history": charts.metric_history(run_ids, series, headline),
        "per_user": charts.distributions(
            {f"{name}@{k}": np.array([r[name] for r in per_user if r[name] is not None]) for name in HEADLINE}
        ),
    }
    concentration = [r for r in metrics if r["metric"].split("@")[0] in CONCENTRATION]
    if concentration:
        images["concentration"] = charts.grouped_bars(
            [r["metric"] for r in concentration],
            {model: [r[model] or 0.0 for r in concentration] for model in (RUN_MODEL, *BASELINES)},
            title="Coverage, popularity and concentration of the published lists",
            xlabel="value (0..1)",
        )
    catalogue = np.zeros(max(run["n_videos"] or len(slots), len(slots)))
    catalogue[: len(slots)] = sorted(slots, reverse=True)
    images["lorenz"] = charts.lorenz(
        {"list slots per video": catalogue},
        title="How list slots spread over the catalogue",
        xlabel="share of catalogue videos, least recommended first",
        ylabel="share of list slots",
    )
    top = sorted(mix, key=lambda r: -max(r["recommended_share"] or 0, r["consumed_share"] or 0))[:TOP_CATEGORIES]
    if top:
        images["categories"] = charts.grouped_bars(
            [charts.label(r["category"]) for r in top],
            {
                "recommended": [r["recommended_share"] or 0 for r in top],
                "watched (training views)": [r["consumed_share"] or 0 for r in top],
            },
            title=f"First-level categories: recommended vs watched (top {len(top)})",
            xlabel="share",
            percent=True,
        )
    for row in mix:
        row["label"] = english_category(row["category"])
    return {
        "run": run,
        "k": k,
        "metrics": metrics,
        "models": (RUN_MODEL, *BASELINES),
        "bias": bias,
        "worst": worst,
        "mix": mix,
        "n_published": len(run_ids),
        "images": {name: charts.data_uri(png) for name, png in images.items()},
    }


@lru_cache(maxsize=64)
def user(path: str, signature: tuple, user_id: int) -> dict | None:
    """Everything the user page shows; None if the user is unknown to the database."""
    del signature
    conn = _connect(path)
    try:
        profile = conn.execute(USER_PROFILE, (user_id,)).fetchone()
        by_category = _rows(conn, USER_VIEWS_BY_CATEGORY, (user_id,))
        if profile is None and not by_category:
            return None
        run = _latest_run(conn)
        recommendations = _rows(conn, USER_RECOMMENDATIONS, {"user_id": str(user_id)})
        recent = _rows(conn, USER_RECENT_VIEWS, (user_id, RECENT_VIEWS))
        metrics = conn.execute(USER_LATEST_METRICS, (user_id,)).fetchone()
        run_means = _rows(conn, LATEST_RUN_MODEL_METRICS, (RUN_MODEL,))
        eval_row = conn.execute(USER_EVAL_SUMMARY, (user_id,)).fetchone()
    finally:
        conn.close()

    views = sum(r["views"] for r in by_category)
    rec_counts: dict = {}
    for r in recommendations:
        rec_counts[r["category"]] = rec_counts.get(r["category"], 0) + 1
    categories = list(dict.fromkeys([r["category"] for r in by_category] + list(rec_counts)))[:TOP_CATEGORIES]
    watched = {r["category"]: r for r in by_category}
    images = {}
    if categories:
        images["categories"] = charts.grouped_bars(
            [charts.label(c) for c in categories],
            {
                "watched (training views)": [
                    watched[c]["views"] / views if c in watched and views else 0 for c in categories
                ],
                "recommended": [
                    rec_counts.get(c, 0) / len(recommendations) if recommendations else 0 for c in categories
                ],
            },
            title="Categories: what the user watched vs what they are recommended",
            xlabel="share",
            percent=True,
            width=6.5,
        )
    k = (run or {}).get("k") or TOP_K
    means = {r["metric"]: r["value"] for r in run_means}
    metric_rows = []
    if metrics is not None:
        for name in ("ndcg", "hit_ratio", "precision", "recall", "spearman", "mae", "rmse"):
            metric_rows.append(
                {"metric": name, "user": metrics[name], "run_mean": means.get(f"{name}@{k}", means.get(name))}
            )
    for row in by_category:
        row["label"] = english_category(row["category"])
        row["share"] = row["views"] / views if views else None
    return {
        "user_id": user_id,
        "profile": dict(profile) if profile else None,
        "run": run,
        "k": k,
        "views": views,
        "by_category": by_category,
        "recommendations": recommendations,
        "recent": recent,
        "metrics": metric_rows,
        "eval": dict(eval_row) if eval_row else None,
        "images": {name: charts.data_uri(png) for name, png in images.items()},
    }
