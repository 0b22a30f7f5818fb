"""Scoring with a trained hybrid model: each tower once per user and per video, then matrix products.

The user tower runs a shard of users at a time (`user_vectors_shard`), on every engine alike, so a user's
vector is the same float32 numbers wherever it is computed; the video table is computed once and shared.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property, partial

import keras
import numpy as np

from recgen.constants import RUN_MODEL, SCORE_BLOCK_USERS, SCORER_NUMPY, SHARD_USERS
from recgen.engines import Executor, LocalExecutor, ModelRef, shard_bounds
from recgen.models.hybrid.settings import HybridSettings, inverse_target
from recgen.models.hybrid.user_tables import UserTables
from recgen.models.keras_base import PREDICT_BATCH, tower_outputs
from recgen.scoring import VideoTable, top_k_vectors, video_table


def user_vectors_shard(
    pair_model: keras.Model, start: int, stop: int, tables: UserTables | None
) -> tuple[np.ndarray, np.ndarray]:
    """Users start..stop-1's vectors and biases: one batch through the user tower, then the per-user tables
    kept outside the model, if any."""
    vectors, bias = pair_model.get_layer("user_tower").predict(
        np.arange(start, stop, dtype=np.int32), verbose=0, batch_size=PREDICT_BATCH
    )
    vectors, bias = vectors.astype(np.float32), bias[:, 0].astype(np.float32)
    if tables is not None:
        tables.add_to(vectors, bias, start)
    return vectors, bias


def score_shard(
    pair_model: keras.Model,
    start: int,
    stop: int,
    users: np.ndarray,
    seen_indptr: np.ndarray,
    seen_videos: np.ndarray,
    tables: UserTables | None,
    videos: VideoTable,
    transform,
    k: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Top-k of `users` (offsets in the shard start..stop-1, with the shard's seen CSR): their vectors from
    the tower, then every video scored (`scoring.top_k_vectors`). Returns catalogue user indexes."""
    vectors, bias = user_vectors_shard(pair_model, start, stop, tables)
    found_users, found_videos, scores = top_k_vectors(
        vectors, bias, users, seen_indptr, seen_videos, videos, k, transform
    )
    return found_users + start, found_videos, scores


@dataclass(frozen=True)
class Scoring:
    """How a run scores every user: on which engine, in shards of how many users, with which scorer, and
    the saved model its workers load (`model.file`; the in-memory model in this process)."""

    executor: Executor
    model: ModelRef
    shard_users: int = SHARD_USERS
    method: str = SCORER_NUMPY


class TowerScorer:
    """Scores with the towers computed once per user and per video: all pairs are one matrix product."""

    predicts_watch_ratio = True

    def __init__(
        self,
        model: keras.Model,
        n_users: int,
        n_videos: int,
        settings: HybridSettings,
        name: str = RUN_MODEL,
        user_tables: UserTables | None = None,
        scoring: Scoring | None = None,
    ):
        self.name = name
        self.settings = settings
        self.model, self.n_users, self.user_tables = model, n_users, user_tables
        self.scoring = scoring or Scoring(LocalExecutor(), ModelRef(None, model))
        self.transform = partial(inverse_target, settings=settings)
        video_vec, video_bias = tower_outputs(model.get_layer("video_tower"), n_videos)
        self.video_vec, self.video_bias = video_vec.astype(np.float32), video_bias[:, 0].astype(np.float32)

    @cached_property
    def _users(self) -> tuple[np.ndarray, np.ndarray]:
        parts = [
            user_vectors_shard(self.model, start, stop, self.user_tables)
            for start, stop in shard_bounds(self.n_users, self.scoring.shard_users)
        ]
        return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])

    @property
    def user_vec(self) -> np.ndarray:
        return self._users[0]

    @property
    def user_bias(self) -> np.ndarray:
        return self._users[1]

    def score_pairs(self, users: np.ndarray, videos: np.ndarray) -> np.ndarray:
        """Each distinct user's scores for every video (`score_block`), then the pairs picked from them: on
        an evaluation matrix, where each user has thousands of pairs, far faster than gathering two vectors per
        pair."""
        distinct, row = np.unique(users, return_inverse=True)
        order = np.argsort(row, kind="stable")
        starts = np.arange(0, len(distinct), SCORE_BLOCK_USERS)
        bounds = np.searchsorted(row[order], np.append(starts, len(distinct)))
        scores = np.empty(len(users), dtype=np.float32)
        for i, start in enumerate(starts):
            pick = order[bounds[i] : bounds[i + 1]]
            block = self.score_block(distinct[start : start + SCORE_BLOCK_USERS])
            scores[pick] = block[row[pick] - start, videos[pick]]
        return scores

    def score_block(self, users: np.ndarray) -> np.ndarray:
        log_scores = self.user_vec[users] @ self.video_vec.T + self.user_bias[users, None] + self.video_bias[None, :]
        return self.transform(log_scores)

    def top_k(
        self, users: np.ndarray, seen_indptr: np.ndarray, seen_videos: np.ndarray, k: int, progress=None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The k best unseen videos of each of `users` (sorted catalogue indexes), a shard of users at a time
        on the scoring's engine: (user, video, score) arrays, by user then rank."""
        scoring = self.scoring
        executor = scoring.executor
        items, counts = [], []
        for start, stop in shard_bounds(self.n_users, scoring.shard_users):
            chosen = users[(users >= start) & (users < stop)] - start
            if len(chosen):
                first, last = seen_indptr[start], seen_indptr[stop]
                items.append((start, stop, chosen, seen_indptr[start : stop + 1] - first, seen_videos[first:last]))
                counts.append(len(chosen))
        done = np.cumsum(counts)
        shared = (
            executor.share(self.user_tables),
            executor.share(video_table(self.video_vec, self.video_bias, scoring.method)),
            self.transform,
            k,
        )
        tick = (lambda n: progress(int(done[n - 1]))) if progress else None
        parts = executor.map(score_shard, items, shared=shared, model=scoring.model, progress=tick)
        if not parts:
            empty = np.empty(0, dtype=np.int64)
            return empty, empty, np.empty(0, dtype=np.float32)
        return tuple(np.concatenate([p[i] for p in parts]) for i in range(3))
