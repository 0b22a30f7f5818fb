"""Baselines every model is compared with, scored exactly like a model (the `Scorer` protocol)."""

from __future__ import annotations

import numpy as np

from recgen.constants import BASELINE_ITEM_MEAN, BASELINE_POPULARITY, BASELINE_RANDOM, ITEM_MEAN_SHRINKAGE
from recgen.features import Interactions, exposure_counts


class VideoScorer:
    """The same score of a video for every user (popularity, item mean); `video_scores` lets `top_k` rank the
    catalogue once for all users."""

    def __init__(self, name: str, video_scores: np.ndarray, predicts_watch_ratio: bool):
        self.name = name
        self.video_scores = np.asarray(video_scores, dtype=np.float32)
        self.predicts_watch_ratio = predicts_watch_ratio

    def score_pairs(self, users: np.ndarray, videos: np.ndarray) -> np.ndarray:
        return self.video_scores[videos]

    def score_block(self, users: np.ndarray) -> np.ndarray:
        return np.broadcast_to(self.video_scores, (len(users), len(self.video_scores)))


class RandomScorer:
    """Uniform random scores, a pure function of (user, video, seed), so a pair scores the same wherever
    it is scored (in a block or alone) and reruns are identical."""

    name = BASELINE_RANDOM
    predicts_watch_ratio = False

    def __init__(self, n_videos: int, seed: int):
        self.n_videos = n_videos
        # Mix the seed in once (modulo 2**64, as an unsigned hash should) so nearby seeds differ everywhere.
        self.salt = _uniform_key(np.array([seed], dtype=np.uint64))[0]

    def score_pairs(self, users: np.ndarray, videos: np.ndarray) -> np.ndarray:
        key = users.astype(np.uint64) * np.uint64(self.n_videos) + videos.astype(np.uint64)
        return _to_unit(_uniform_key(key ^ self.salt))

    def score_block(self, users: np.ndarray) -> np.ndarray:
        key = users.astype(np.uint64)[:, None] * np.uint64(self.n_videos) + np.arange(self.n_videos, dtype=np.uint64)
        return _to_unit(_uniform_key(key ^ self.salt))


def _uniform_key(key: np.ndarray) -> np.ndarray:
    """splitmix64 finaliser: a well-mixed 64-bit hash of each key (arithmetic wraps modulo 2**64)."""
    with np.errstate(over="ignore"):
        z = key + np.uint64(0x9E3779B97F4A7C15)  # one new array, then in place: 77M keys in the top-k pass
        z ^= z >> np.uint64(30)
        z *= np.uint64(0xBF58476D1CE4E5B9)
        z ^= z >> np.uint64(27)
        z *= np.uint64(0x94D049BB133111EB)
        z ^= z >> np.uint64(31)
        return z


def _to_unit(z: np.ndarray) -> np.ndarray:
    """The top 24 bits as a float32 in [0, 1): exact, so no two different keys round to the same 1.0."""
    # Integers below 2**24 are exact in float32 and the scaling is by a power of two: no rounding anywhere.
    return (z >> np.uint64(40)).astype(np.float32) * np.float32(1.0 / (1 << 24))


def item_means(train: Interactions, n_videos: int, shrinkage: float = ITEM_MEAN_SHRINKAGE) -> np.ndarray:
    """Each video's mean watch ratio, shrunk towards the global mean: (sum + m * mean) / (n + m)."""
    counts = np.bincount(train.videos, minlength=n_videos)
    sums = np.bincount(train.videos, weights=train.watch_ratio.astype(np.float64), minlength=n_videos)
    global_mean = float(train.watch_ratio.mean()) if len(train) else 0.0
    return (sums + shrinkage * global_mean) / (counts + shrinkage)


def popularity_scorer(counts: np.ndarray) -> VideoScorer:
    return VideoScorer(BASELINE_POPULARITY, counts, predicts_watch_ratio=False)


def baselines(train: Interactions, n_videos: int, seed: int) -> list:
    """random, popularity (exposure count) and item_mean (shrunk mean watch ratio)."""
    return [
        RandomScorer(n_videos, seed),
        popularity_scorer(exposure_counts(train, n_videos)),
        VideoScorer(BASELINE_ITEM_MEAN, item_means(train, n_videos), predicts_watch_ratio=True),
    ]
