"""Scoring with a trained hybrid model: each tower once per user and per video, then matrix products."""

from __future__ import annotations

import keras
import numpy as np

from recgen.constants import RUN_MODEL, SCORE_BLOCK_USERS
from recgen.models.hybrid.settings import HybridSettings, inverse_target
from recgen.models.keras_base import tower_outputs


class TowerScorer:
    """Scores with the towers computed once per user and per video: all pairs are one matrix product."""

    predicts_watch_ratio = True

    def __init__(
        self, model: keras.Model, n_users: int, n_videos: int, settings: HybridSettings, name: str = RUN_MODEL
    ):
        self.name = name
        self.settings = settings
        user_vec, user_bias = tower_outputs(model.get_layer("user_tower"), n_users)
        video_vec, video_bias = tower_outputs(model.get_layer("video_tower"), n_videos)
        self.user_vec, self.user_bias = user_vec.astype(np.float32), user_bias[:, 0].astype(np.float32)
        self.video_vec, self.video_bias = video_vec.astype(np.float32), video_bias[:, 0].astype(np.float32)

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
        return inverse_target(log_scores, self.settings)
