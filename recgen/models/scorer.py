"""What every model and baseline is to the stages that rank with it: a scorer of (user, video) pairs."""

from __future__ import annotations

from typing import Protocol

import numpy as np


class Scorer(Protocol):
    """Anything that ranks videos for users: the Keras models and the baselines alike."""

    name: str
    predicts_watch_ratio: bool  # True if scores estimate watch_ratio (then MAE/RMSE are meaningful)

    def score_pairs(self, users: np.ndarray, videos: np.ndarray) -> np.ndarray:
        """float32 scores for (user index, video index) pairs."""

    def score_block(self, users: np.ndarray) -> np.ndarray:
        """(len(users), n_videos) float32 scores of every video for a block of user indexes."""


# A scorer whose scores are the same for every user (popularity, item mean) may also expose them as a
# `video_scores` array (n_videos,): `top_k` then orders the catalogue once and skips each user's seen videos,
# instead of scoring and partitioning a users x videos block.
