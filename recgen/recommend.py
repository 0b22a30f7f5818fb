"""The recommend stage: the top-k unseen videos of every user, scored in blocks of users (no users x videos
frame is ever built), each row with the path that produced it, written under the run's id."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sqlalchemy import Connection

from recgen.constants import SCORE_BLOCK_USERS, SOURCE_CONTENT, SOURCE_MODEL, SOURCE_POPULARITY, TOP_K
from recgen.features import Inputs
from recgen.models.baselines import popularity_scorer
from recgen.models.scorer import Scorer
from recgen.progress import Reporter
from recgen.scoring import best_k, csr_take
from recgen.store.bulk import insert_frame
from recgen.store.schema import recommendations


def top_k(
    scorer: Scorer,
    users: np.ndarray,
    seen_indptr: np.ndarray,
    seen_videos: np.ndarray,
    k: int = TOP_K,
    block: int = SCORE_BLOCK_USERS,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The k best unseen videos of each user: (user index, video index, score) arrays, `k` rows per user in
    rank order (fewer if a user has fewer unseen videos).

    Ties are broken by video index ascending, so lists are deterministic. `seen_indptr`/`seen_videos` is a
    CSR of each user's training videos (excluded). progress(done_users, total_users) is called per block.
    """
    users = np.asarray(users)
    video_scores = getattr(scorer, "video_scores", None)
    if video_scores is not None and np.isfinite(video_scores).all():
        result = _top_k_global(np.asarray(video_scores, dtype=np.float32), users, seen_indptr, seen_videos, k)
        if progress:
            progress(len(users), len(users))
        return result
    out_users, out_videos, out_scores = [], [], []
    for start in range(0, len(users), block):
        block_users = users[start : start + block]
        scores = np.array(scorer.score_block(block_users), dtype=np.float32)
        rows = np.repeat(np.arange(len(block_users)), np.diff(seen_indptr)[block_users])
        cols = seen_videos[csr_take(seen_indptr, block_users)]
        scores[rows, cols] = -np.inf
        videos, best = best_k(scores, k)
        keep = np.isfinite(best)
        out_users.append(np.broadcast_to(block_users[:, None], videos.shape)[keep])
        out_videos.append(videos[keep])
        out_scores.append(best[keep])
        if progress:
            progress(min(start + block, len(users)), len(users))
    return np.concatenate(out_users), np.concatenate(out_videos), np.concatenate(out_scores)


def _top_k_global(
    video_scores: np.ndarray, users: np.ndarray, seen_indptr: np.ndarray, seen_videos: np.ndarray, k: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """`top_k` for scores shared by all users: the catalogue in one global order, each user's seen skipped.

    With a user's seen videos at sorted global positions p_0 < p_1 < ..., the j-th unseen video (0-based)
    sits at position j + #{i : p_i - i <= j} (p_i - i counts the unseen videos before p_i and never
    decreases), so one segmented searchsorted gives every user's list: time linear in the seen rows plus
    users x k, whatever the catalogue size. Same result as ranking every user's row (tested).
    """
    n_videos = len(video_scores)
    order = np.lexsort((np.arange(n_videos), -video_scores))  # score descending, then video ascending
    position = np.empty(n_videos, dtype=np.int64)
    position[order] = np.arange(n_videos)
    n_seen = seen_indptr[users + 1] - seen_indptr[users]
    first_seen = np.cumsum(n_seen) - n_seen
    seen_group = np.repeat(np.arange(len(users), dtype=np.int64), n_seen)
    stride = n_videos + 1
    seen_key = np.sort(seen_group * stride + position[seen_videos[csr_take(seen_indptr, users)]])
    # seen_key - group*stride is p_i; subtracting i (the rank within the user) gives p_i - i, still sorted.
    seen_key -= np.arange(len(seen_key)) - np.repeat(first_seen, n_seen)
    n_out = np.minimum(k, n_videos - n_seen)
    first_out = np.cumsum(n_out) - n_out
    out_group = np.repeat(np.arange(len(users), dtype=np.int64), n_out)
    rank = np.arange(n_out.sum()) - np.repeat(first_out, n_out)
    before = np.searchsorted(seen_key, out_group * stride + rank, side="right") - first_seen[out_group]
    videos = order[rank + before]
    return users[out_group], videos, video_scores[videos]


def recommendation_frame(
    run_id: int,
    users: np.ndarray,
    videos: np.ndarray,
    scores: np.ndarray,
    user_ids: np.ndarray,
    video_ids: np.ndarray,
    sources: np.ndarray | str,
) -> pd.DataFrame:
    """Rows for the `recommendations` table from index arrays as returned by `top_k`."""
    starts = np.r_[True, users[1:] != users[:-1]]
    group_start = np.maximum.accumulate(np.where(starts, np.arange(len(users)), 0))
    return pd.DataFrame(
        {
            "run_id": run_id,
            "user_id": user_ids[users],
            "rank": np.arange(len(users)) - group_start + 1,
            "video_id": video_ids[videos],
            "score": scores.astype(float),
            "source": sources,
        }
    )


@dataclass(frozen=True)
class Recommendations:
    """Every user's top-k as index arrays sorted by user then rank, and the path that produced each row."""

    users: np.ndarray
    videos: np.ndarray
    scores: np.ndarray
    sources: np.ndarray

    def __len__(self) -> int:
        return len(self.users)

    @property
    def n_users(self) -> int:
        """Users given at least one recommendation."""
        return len(np.unique(self.users))


def recommend(
    conn: Connection,
    run_id: int,
    scorer: Scorer,
    content_path: bool,
    inputs: Inputs,
    k: int,
    reporter: Reporter,
) -> Recommendations:
    """Top-k for every user of the catalogue, written to `recommendations` inside the caller's transaction.

    Users and videos with training rows are scored by the model (`model`); a user or video without any is
    scored from features by a family that can (`content_path`: `content`); a user without history gets the
    most exposed unseen videos from a family that cannot (`popularity`).
    """
    catalog, seen = inputs.catalog, inputs.seen
    known_user = np.bincount(inputs.train.users, minlength=len(catalog.user_ids)) > 0
    warm, cold = np.flatnonzero(known_user), np.flatnonzero(~known_user)
    scoring = reporter.progress("scoring", len(warm), "users")
    sharded = getattr(scorer, "top_k", None)  # a scorer that ranks shards of users on the run's engine
    if sharded is not None:
        parts = [(*sharded(warm, *seen, k=k, progress=scoring), None)]
    else:
        parts = [(*top_k(scorer, warm, *seen, k=k, progress=lambda done, _total: scoring(done)), None)]
    if len(cold):
        cold_scorer = scorer if content_path else popularity_scorer(inputs.exposure)
        cold_source = SOURCE_CONTENT if content_path else SOURCE_POPULARITY
        reporter.log(f"{len(cold):,} users without history: scored by {cold_source}")
        parts.append((*top_k(cold_scorer, cold, *seen, k=k), cold_source))
    users = np.concatenate([p[0] for p in parts])
    videos = np.concatenate([p[1] for p in parts])
    scores = np.concatenate([p[2] for p in parts])
    sources = np.where(inputs.exposure[videos] > 0, SOURCE_MODEL, SOURCE_CONTENT).astype(object)
    for part_users, _, _, source in parts:
        if source is not None:
            sources[np.isin(users, part_users)] = source
    order = np.argsort(users, kind="stable")
    lists = Recommendations(users[order], videos[order], scores[order], sources[order])
    frame = recommendation_frame(
        run_id, lists.users, lists.videos, lists.scores, catalog.user_ids, catalog.video_ids, lists.sources
    )
    insert_frame(conn, recommendations, frame)
    return lists
