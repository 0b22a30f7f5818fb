"""Top-k of every user against every video, for models whose score is a dot product of two towers' vectors.

    score(u, v) = f(<user(u), video(v)> + b_u + b_v),  f increasing

Ranking v for one u is then a maximum inner product search of [user(u), 1] against [video(v), b_v], and
three scorers do it (`--scorer`):

- `numpy` (the default): blocks of users times the whole video table, each user's seen videos masked, the
  best k by `argpartition`; exact, ties broken by the lower video index.
- `flat`: FAISS's exact brute-force search (`faiss.knn`, BLAS products and a heap per user in C++), far
  faster on large catalogues (`pip install 'recgen[faiss]'`). Each user asks for k plus as many as they
  have seen, so the seen ones can be dropped and k remain; where a tie crosses that cut, the user is
  ranked by the numpy path instead, so the lists stay exact.
- `ivf`: FAISS's inverted-file index, approximate: each user searches only the `nprobe` nearest of
  `nlist` clusters of videos. Never the default; its recall against the exact lists is measured by
  benchmarks/scale.py.

numpy only, FAISS when asked for: the workers that run this need no Keras.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from recgen.constants import FAISS_EXTRA, SCORE_BLOCK_USERS, SCORER_CHOICES, SCORER_FLAT, SCORER_IVF, SCORER_NUMPY
from recgen.errors import ConfigError

FAISS_BLOCK_USERS = 4_096  # users per FAISS search: its products run in blocks of this many queries anyway
FIRST_PASS = 4  # candidates per user in FAISS's first pass, in multiples of k
IVF_LISTS_PER_SQRT = 4  # nlist = 4 sqrt(n_videos), FAISS's usual range for inverted files
IVF_NPROBE = 32  # lists searched per user (recall against exact: benchmarks/scale.py)

Transform = Callable[[np.ndarray], np.ndarray]


def import_faiss():
    try:
        import faiss
    except ImportError as exc:
        raise ConfigError(
            f"--scorer flat and ivf need FAISS, which is not installed: pip install '{FAISS_EXTRA}'"
        ) from exc
    return faiss


@dataclass(frozen=True)
class VideoTable:
    """Every video's vector and bias, what every user is scored against (shared read-only by all shards);
    for `ivf`, the serialised index too."""

    vectors: np.ndarray  # (n_videos, dim) float32
    bias: np.ndarray  # (n_videos,) float32
    method: str = SCORER_NUMPY
    index: np.ndarray | None = None  # faiss.serialize_index bytes of the ivf index
    key: str = field(default_factory=lambda: uuid.uuid4().hex)  # names this table in a worker's cache

    def __len__(self) -> int:
        return len(self.bias)


def video_table(
    vectors: np.ndarray, bias: np.ndarray, method: str = SCORER_NUMPY, nprobe: int = IVF_NPROBE
) -> VideoTable:
    """The table to score against with `method` (for `ivf`, its index is built here, once)."""
    if method not in SCORER_CHOICES:
        raise ConfigError(f"--scorer must be one of {', '.join(SCORER_CHOICES)}, not {method!r}")
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    bias = np.ascontiguousarray(bias, dtype=np.float32)
    if method == SCORER_NUMPY:
        return VideoTable(vectors, bias)
    faiss = import_faiss()
    if method == SCORER_FLAT:
        return VideoTable(vectors, bias, method)
    points = _augmented(vectors, bias)
    lists = ivf_lists(len(points))
    index = faiss.IndexIVFFlat(faiss.IndexFlatIP(points.shape[1]), points.shape[1], lists, faiss.METRIC_INNER_PRODUCT)
    index.train(points)
    index.add(points)
    index.nprobe = min(nprobe, lists)
    return VideoTable(vectors, bias, method, faiss.serialize_index(index))


def ivf_lists(n_videos: int) -> int:
    """How many lists the inverted file cuts `n_videos` into (FAISS wants at least 39 videos a list)."""
    return max(1, min(int(IVF_LISTS_PER_SQRT * np.sqrt(n_videos)), n_videos // 39))


def _augmented(vectors: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """[video(v), b_v]: its inner product with [user(u), 1] is the score before b_u and f."""
    return np.ascontiguousarray(np.hstack([vectors, bias[:, None]]), dtype=np.float32)


_WORKER_CACHE: dict[str, object] = {}  # per process: the augmented table or the deserialised index, by key


def _search_table(table: VideoTable):
    found = _WORKER_CACHE.get(table.key)
    if found is None:
        _WORKER_CACHE.clear()  # one table at a time: a new run's replaces the last one's
        if table.method == SCORER_IVF:
            found = import_faiss().deserialize_index(table.index)
        else:
            found = _augmented(table.vectors, table.bias)
        _WORKER_CACHE[table.key] = found
    return found


def top_k_vectors(
    user_vec: np.ndarray,
    user_bias: np.ndarray,
    users: np.ndarray,
    seen_indptr: np.ndarray,
    seen_videos: np.ndarray,
    table: VideoTable,
    k: int,
    transform: Transform,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The k best unseen videos of each of `users` (row indexes into user_vec and the seen CSR): (user, video,
    score) arrays in `users` order, k rows per user in rank order (fewer if fewer are unseen)."""
    if table.method == SCORER_NUMPY or len(users) == 0:
        return _numpy_top_k(user_vec, user_bias, users, seen_indptr, seen_videos, table, k, transform)
    return _faiss_top_k(user_vec, user_bias, users, seen_indptr, seen_videos, table, k, transform)


def _numpy_top_k(user_vec, user_bias, users, seen_indptr, seen_videos, table, k, transform):
    out = []
    for start in range(0, len(users), SCORE_BLOCK_USERS):
        block = users[start : start + SCORE_BLOCK_USERS]
        log_scores = user_vec[block] @ table.vectors.T + user_bias[block, None] + table.bias[None, :]
        scores = np.array(transform(log_scores), dtype=np.float32)
        rows = np.repeat(np.arange(len(block)), np.diff(seen_indptr)[block])
        scores[rows, seen_videos[csr_take(seen_indptr, block)]] = -np.inf
        videos, best = best_k(scores, k)
        keep = np.isfinite(best)
        out.append((np.broadcast_to(block[:, None], videos.shape)[keep], videos[keep], best[keep]))
    return _joined(out)


def _faiss_top_k(user_vec, user_bias, users, seen_indptr, seen_videos, table, k, transform):
    """FAISS's search in two passes: first every user asks for FIRST_PASS x k candidates, which is enough
    unless many of their best videos are ones they have seen; those users ask again for k plus all they have
    seen, grouped by how many that is. Users still unsure (a tie across the cut, or an inverted file short of
    candidates) are ranked by the numpy path."""
    n_videos = len(table)
    out, again = [], []
    first = int(min(n_videos, FIRST_PASS * k))
    for start in range(0, len(users), FAISS_BLOCK_USERS):
        block = users[start : start + FAISS_BLOCK_USERS]
        again.append(_search(block, first, out, user_vec, user_bias, seen_indptr, seen_videos, table, k, transform))
    unsure = np.concatenate(again)
    unsure = unsure[np.argsort(np.diff(seen_indptr)[unsure], kind="stable")]  # alike share a block and its k'
    again = []
    for start in range(0, len(unsure), FAISS_BLOCK_USERS):
        block = unsure[start : start + FAISS_BLOCK_USERS]
        wanted = int(min(n_videos, k + np.diff(seen_indptr)[block].max()))
        again.append(_search(block, wanted, out, user_vec, user_bias, seen_indptr, seen_videos, table, k, transform))
    last = np.concatenate(again) if again else np.empty(0, dtype=np.int64)
    if len(last):
        out.append(_numpy_top_k(user_vec, user_bias, np.sort(last), seen_indptr, seen_videos, table, k, transform))
    got_users, got_videos, got_scores = _joined(out)
    position = np.empty(len(user_vec), dtype=np.int64)
    position[users] = np.arange(len(users))
    final = np.lexsort((np.arange(len(got_users)), position[got_users]))  # `users` order, ranks kept
    return got_users[final], got_videos[final], got_scores[final]


def _search(block, wanted, out, user_vec, user_bias, seen_indptr, seen_videos, table, k, transform) -> np.ndarray:
    """Search `wanted` candidates for each user of `block`; append the sure users' lists to `out` and return
    the others."""
    faiss, index = import_faiss(), _search_table(table)
    queries = _augmented(user_vec[block], np.ones(len(block), dtype=np.float32))
    if table.method == SCORER_IVF:
        products, videos = index.search(queries, wanted)
    else:
        products, videos = faiss.knn(queries, index, wanted, metric=faiss.METRIC_INNER_PRODUCT)
    chosen, products, videos, sure = _drop_seen(
        block, products, videos, seen_indptr, seen_videos, k, len(table), exact=table.method == SCORER_FLAT
    )
    rows, cols = np.nonzero(chosen & sure[:, None])
    scores = np.array(transform(products[rows, cols] + user_bias[block[rows]]), dtype=np.float32)
    out.append((block[rows], videos[rows, cols].astype(np.int64), scores))
    return block[~sure]


def _drop_seen(block, products, videos, seen_indptr, seen_videos, k, n_videos, exact):
    """Per user, the first k unseen of their candidates in (product descending, video ascending) order.

    Returns the chosen mask over the reordered candidates, the reordered arrays, and which users' lists are
    complete: k unseen found (or all there are), and for an `exact` search, their k-th product above the
    last one returned (or nothing left out), since every video not returned scores at most that one."""
    missing = videos < 0  # an inverted file returns -1 where its probed lists held too few
    products = np.where(missing, -np.inf, products)
    videos = np.where(missing, n_videos, videos)
    order = np.lexsort((videos, -products), axis=1)
    products, videos = np.take_along_axis(products, order, 1), np.take_along_axis(videos, order, 1)
    seen = _is_seen(block, videos, seen_indptr, seen_videos) | ~np.isfinite(products)
    rank = np.cumsum(~seen, axis=1)
    chosen = ~seen & (rank <= k)
    n_chosen = chosen.sum(axis=1)
    n_unseen = n_videos - np.diff(seen_indptr)[block]
    complete = n_chosen >= np.minimum(k, n_unseen)
    if not exact or products.shape[1] == n_videos:
        return chosen, products, videos, complete
    beats_rest = np.min(np.where(chosen, products, np.inf), axis=1) > products[:, -1]
    return chosen, products, videos, complete & beats_rest


def _is_seen(block, videos, seen_indptr, seen_videos) -> np.ndarray:
    """Which (user of `block`, candidate video) pairs are in the users' seen CSR (sorted per user)."""
    positions = csr_take(seen_indptr, block)
    owners = np.repeat(np.arange(len(block), dtype=np.int64), np.diff(seen_indptr)[block])
    stride = np.int64(videos.max(initial=0)) + 1 + np.int64(seen_videos.max(initial=0))
    seen_keys = owners * stride + seen_videos[positions]
    keys = np.arange(len(block), dtype=np.int64)[:, None] * stride + videos
    where = np.minimum(np.searchsorted(seen_keys, keys), max(len(seen_keys) - 1, 0))
    return (seen_keys[where] == keys) if len(seen_keys) else np.zeros(videos.shape, dtype=bool)


def _joined(parts) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    if not parts:
        empty = np.empty(0, dtype=np.int64)
        return empty, empty, np.empty(0, dtype=np.float32)
    return tuple(np.concatenate([p[i] for p in parts]) for i in range(3))


def csr_take(indptr: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Positions in the CSR data array of all entries of `rows`, concatenated in row order."""
    starts, stops = indptr[rows], indptr[rows + 1]
    lengths = stops - starts
    offsets = np.repeat(starts - np.concatenate(([0], np.cumsum(lengths)[:-1])), lengths)
    return np.arange(lengths.sum()) + offsets


def best_k(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Per row, the k highest scores and their columns, sorted by score descending then column ascending."""
    n_rows, n_cols = scores.shape
    k = min(k, n_cols)
    part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    kth = np.take_along_axis(scores, part, axis=1).min(axis=1)
    # argpartition cuts ties at the k-th score arbitrarily. In rows with a tie across the cut, keep every
    # score above the k-th and fill up with the lowest columns holding the k-th score (no full-row sort).
    tied = (scores >= kth[:, None]).sum(axis=1) > k
    if tied.any():
        rows, cut = scores[tied], kth[tied][:, None]
        above = rows > cut
        at_cut = rows == cut
        need = k - above.sum(axis=1)
        chosen = above | (at_cut & (np.cumsum(at_cut, axis=1) <= need[:, None]))
        part[tied] = np.nonzero(chosen)[1].reshape(-1, k)  # row-major: each row's k columns, ascending
    part_scores = np.take_along_axis(scores, part, axis=1)
    order = np.lexsort((part, -part_scores), axis=1)
    videos = np.take_along_axis(part, order, axis=1)
    return videos, np.take_along_axis(part_scores, order, axis=1)
