"""The hybrid model's side tables: per-user and per-video features in catalogue order, read from the database."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from sqlalchemy import Engine, text

from recgen.features import Catalog, Interactions, exposure_counts, seed_video_features
from recgen.models.hybrid.settings import ABLATION_GROUPS, HybridSettings

USER_CATEGORICAL = (
    "user_active_degree",
    "is_lowactive_period",
    "is_live_streamer",
    "is_video_author",
    "follow_user_num_range",
    "fans_user_num_range",
    "friend_user_num_range",
    "register_days_range",
    *(f"onehot_feat{i}" for i in range(18)),
)


USER_COUNTS = ("follow_user_num", "fans_user_num", "friend_user_num", "register_days")


CATEGORY_COLUMNS = ("first_level_category_id", "second_level_category_id", "third_level_category_id")


VIDEO_CATEGORICAL = (
    *CATEGORY_COLUMNS,
    "author_id",
    "upload_type",
    "video_tag_id",
)


MIN_CATEGORY_COUNT = 2  # rarer values share the "unknown" index 0: one example cannot train an embedding


DURATION_CENTRES = np.log(np.array([2, 4, 6, 8, 10, 13, 17, 25, 40, 70, 150.0]) * 1000)  # ms, RBF centres


DURATION_WIDTH = 0.35  # RBF width in log-ms: neighbouring bumps overlap


@dataclass(frozen=True)
class SideTables:
    """Per-row (user or video) feature tables in catalogue order, fed to the model as fixed lookups."""

    categorical: np.ndarray  # (n, n_cat) int32 vocabulary indexes, 0 = unknown/rare
    vocab_sizes: tuple[int, ...]
    numeric: np.ndarray  # (n, n_num) float32, standardised
    known: np.ndarray  # (n,) bool: has training rows (so an id embedding exists)
    content: np.ndarray | None = None  # videos only: (n, n_content) fixed descriptors users weigh personally


def _encode_categories(frame: pd.DataFrame, columns: tuple[str, ...]) -> tuple[np.ndarray, tuple[int, ...]]:
    """Each column's values to 1..n by frequency (0 for missing and values seen fewer than MIN times)."""
    out = np.zeros((len(frame), len(columns)), dtype=np.int32)
    sizes = []
    for j, column in enumerate(columns):
        counts = frame[column].value_counts(dropna=True)
        keep = counts[counts >= MIN_CATEGORY_COUNT].index
        mapping = pd.Series(np.arange(1, len(keep) + 1), index=keep)
        out[:, j] = frame[column].map(mapping).fillna(0).to_numpy(np.int32)
        sizes.append(len(keep) + 1)
    return out, tuple(sizes)


def _standardise(values: np.ndarray) -> np.ndarray:
    values = np.nan_to_num(values.astype(np.float64))
    std = values.std(axis=0)
    return ((values - values.mean(axis=0)) / np.where(std > 0, std, 1.0)).astype(np.float32)


def side_tables(
    engine: Engine, catalog: Catalog, train: Interactions, settings: HybridSettings | None = None
) -> tuple[SideTables, SideTables]:
    """The user and the video feature tables of a hybrid model, leaving out the groups in `settings.without`."""
    settings = settings or HybridSettings()
    without = settings.without
    unknown = set(without) - set(ABLATION_GROUPS)
    if unknown:
        raise ValueError(f"unknown feature groups {sorted(unknown)}; known: {sorted(ABLATION_GROUPS)}")
    videos, duration_ms = video_tables(engine, catalog, train, without, settings.taste_bumps)
    return user_tables(engine, catalog, train, duration_ms, without, settings.history), videos


def user_tables(
    engine: Engine,
    catalog: Catalog,
    train: Interactions,
    duration_ms: np.ndarray,
    without: tuple[str, ...] = (),
    history: bool = False,
) -> SideTables:
    """Profile features from `users`, and with `history` features from the training log (rows, the mean log
    play time and the mean log1p watch ratio).

    History is off by default: the evaluated users' training rows all lie outside the evaluated videos (no
    big_matrix row is on a small_matrix pair), so their history describes other videos than the training
    users' does, and the model ranks better without it (docs/benchmarks.md, ablations)."""
    with engine.connect() as conn:
        profiles = pd.read_sql_query(text("SELECT * FROM users"), conn)
    frame = pd.DataFrame({"user_id": catalog.user_ids}).merge(profiles, on="user_id", how="left")
    categorical, sizes = _encode_categories(frame, () if "user_profile" in without else USER_CATEGORICAL)
    n_users = len(catalog.user_ids)
    rows = np.bincount(train.users, minlength=n_users)
    log_play = np.log1p(train.watch_ratio.astype(np.float64) * duration_ms[train.videos] / 1000.0)
    mean_log_play = np.bincount(train.users, weights=log_play, minlength=n_users) / np.maximum(rows, 1)
    log_ratio = np.log1p(train.watch_ratio.astype(np.float64))
    mean_log_ratio = np.bincount(train.users, weights=log_ratio, minlength=n_users) / np.maximum(rows, 1)
    blocks = {
        "user_profile": [
            np.log1p(frame[list(USER_COUNTS)].to_numpy(np.float64)),
            frame[list(USER_COUNTS)].isna().to_numpy(np.float64),
        ],
        "history": [
            np.log1p(rows)[:, None],
            np.where(rows > 0, mean_log_play, np.nan)[:, None],
            np.where(rows > 0, mean_log_ratio, np.nan)[:, None],
        ],
    }
    numeric = _numeric(blocks, (*without, *(() if history else ("history",))), n_users)
    known = rows > 0 if "ids" not in without else np.zeros(n_users, dtype=bool)
    return SideTables(categorical, sizes, numeric, known)


def _numeric(blocks: dict[str, list[np.ndarray]], without: tuple[str, ...], n: int) -> np.ndarray:
    """The kept blocks side by side, missing values at the column mean, standardised."""
    kept = [part for name, parts in blocks.items() if name not in without for part in parts]
    if not kept:
        return np.zeros((n, 0), dtype=np.float32)
    numeric = np.column_stack(kept).astype(np.float64)
    with np.errstate(invalid="ignore"):
        means = np.nanmean(numeric, axis=0)
    numeric = np.where(np.isnan(numeric), np.nan_to_num(means)[None, :], numeric)
    return _standardise(numeric)


def video_tables(
    engine: Engine, catalog: Catalog, train: Interactions, without: tuple[str, ...] = (), taste_bumps: bool = False
) -> tuple[SideTables, np.ndarray]:
    """Content features (categories, author, tags, duration as log and RBF bumps, daily statistics,
    exposure) and each video's duration in ms.

    Users get personal weights over the duration's slope (and with `taste_bumps` over its bumps too: eleven
    more parameters per user, which rank worse), the tags and the top-level category."""
    with engine.connect() as conn:
        frame = pd.read_sql_query(text("SELECT * FROM videos"), conn)
        tags = pd.read_sql_query(text("SELECT video_id, tag_id FROM video_tags"), conn)
    frame = pd.DataFrame({"video_id": catalog.video_ids}).merge(frame, on="video_id", how="left")
    left_out = {"categories": CATEGORY_COLUMNS, "author": ("author_id",)}
    dropped = {column for group in without for column in left_out.get(group, ())}
    categorical, sizes = _encode_categories(frame, tuple(c for c in VIDEO_CATEGORICAL if c not in dropped))
    tag_ids = np.sort(tags["tag_id"].unique())
    multi_hot = np.zeros((len(frame), len(tag_ids)), dtype=np.float64)
    multi_hot[catalog.video_index(tags["video_id"].to_numpy()), np.searchsorted(tag_ids, tags["tag_id"])] = 1.0
    duration = frame["video_duration"].to_numpy(np.float64)
    log_duration = np.log(np.where(np.isnan(duration), np.nanmedian(duration), np.maximum(duration, 100.0)))
    bumps = np.exp(-(((log_duration[:, None] - DURATION_CENTRES[None, :]) / DURATION_WIDTH) ** 2))
    daily, _ = seed_video_features(engine, catalog)
    exposure = exposure_counts(train, len(frame))
    numeric = _numeric(
        {
            "tags": [multi_hot],
            "duration": [log_duration[:, None], bumps],
            "daily": [daily, np.log1p(exposure)[:, None]],
        },
        without,
        len(frame),
    )
    # What each user gets a personal weight for: duration (a slope), feature tags (shared by a video's tags)
    # and the top-level category.
    centred = (log_duration - log_duration.mean()) / max(log_duration.std(), 1e-6)
    taste_blocks = {
        "duration": [centred[:, None], bumps] if taste_bumps else [centred[:, None]],
        "tags": [multi_hot / np.maximum(multi_hot.sum(axis=1, keepdims=True), 1)],
        "categories": [pd.get_dummies(frame["first_level_category_id"]).to_numpy(np.float64)],
    }
    kept = [part for name, parts in taste_blocks.items() if name not in without for part in parts]
    content = np.column_stack(kept) if kept and "taste" not in without else np.zeros((len(frame), 0))
    known = exposure > 0 if "ids" not in without else np.zeros(len(frame), dtype=bool)
    tables = SideTables(categorical, sizes, numeric, known, content.astype(np.float32))
    return tables, np.exp(log_duration)
