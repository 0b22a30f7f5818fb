"""Synthetic KuaiRec 2.0: the seven CSVs in the exact real format, drawn from a model with a planted truth.

`generate_sample(out_dir, scale)` writes `out_dir/KuaiRec 2.0/data/*.csv` (the layout of the real zip) and
`out_dir/ground_truth.csv`, the noise-free expected watch ratio of every small-matrix cell, so that an
oracle ranking is known and a model's quality can be read as a share of the best achievable. The model and
its parameters are documented in docs/synthetic.md, with the real dataset's statistics it reproduces
(benchmarks/sample_stats.py prints them next to the targets).

Everything is drawn from one `numpy.random.Generator(seed)` in a fixed order, so a seed gives
byte-identical files. The big matrix is generated and written in user chunks to bound memory at full scale.

This module writes the files; the generator is split by what it draws: `params` (sizes and every
parameter), `world` (videos and users), `interactions` (the watch-ratio model, big_matrix, small_matrix,
ground truth), `side_tables` (captions, daily features, social network), `csv_format` (the real files' text
format) and `vocabulary` (the vocabularies).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from recgen.constants import (
    BIG_MATRIX,
    CAPTION_CATEGORY,
    DATA_SUBDIRS,
    GROUND_TRUTH,
    ITEM_CATEGORIES,
    ITEM_DAILY_FEATURES,
    SMALL_MATRIX,
    SOCIAL_NETWORK,
    USER_FEATURES,
)
from recgen.errors import ConfigError
from recgen.progress import Reporter, as_reporter
from recgen.sample.csv_format import BIG_HEADER, list_text, write_arrow_csv, write_pandas_csv
from recgen.sample.interactions import big_tables, small_and_truth
from recgen.sample.params import SCALES, Scale
from recgen.sample.side_tables import captions, daily_tables, social_network
from recgen.sample.world import make_world

DATA_SUBDIR = Path(DATA_SUBDIRS[0])  # the layout of the real zip


def generate_sample(
    out_dir: Path | str,
    scale: str | Scale = "tiny",
    seed: int = 42,
    progress: Reporter | Callable[[str], None] | None = None,
) -> Path:
    """Write the 7 CSVs to out_dir/"KuaiRec 2.0"/"data"/ and out_dir/"ground_truth.csv"; return the data folder.

    `scale` is a named scale (SCALES) or any size from `custom_scale`. Memory is bounded by the big matrix's
    chunks (BIG_CHUNK_CELLS) and the other tables' own sizes, never by users x videos.

    Example:
        >>> data = generate_sample("output/sample", scale="tiny", seed=42)  # doctest: +SKIP
        >>> data = generate_sample("/tmp/big", scale=custom_scale(100_000, 100_000))  # doctest: +SKIP
    """
    if isinstance(scale, str) and scale not in SCALES:
        raise ConfigError(f"unknown sample scale {scale!r}; choose one of {', '.join(SCALES)}")
    out = Path(out_dir)
    data = out / DATA_SUBDIR
    data.mkdir(parents=True, exist_ok=True)
    reporter = as_reporter(progress)
    say = reporter.log
    rng = np.random.default_rng(seed)
    w = make_world(rng, SCALES[scale] if isinstance(scale, str) else scale)

    write_pandas_csv(data / USER_FEATURES, w.users.features)
    say(f"wrote {USER_FEATURES} ({w.scale.n_users:,} rows)")
    feats = pd.DataFrame({"video_id": np.arange(w.scale.n_videos), "feat": list_text(w.videos.tag_lists)})
    write_pandas_csv(data / ITEM_CATEGORIES, feats)
    say(f"wrote {ITEM_CATEGORIES} ({w.scale.n_videos:,} rows)")
    (data / CAPTION_CATEGORY).write_bytes(captions(rng, w).encode("utf-8"))
    say(f"wrote {CAPTION_CATEGORY} ({w.scale.n_videos:,} rows)")
    for chunk, daily in enumerate(daily_tables(rng, w)):
        write_pandas_csv(data / ITEM_DAILY_FEATURES, daily, append=chunk > 0)
    say(f"wrote {ITEM_DAILY_FEATURES} ({w.scale.daily_rows:,} rows)")
    del daily
    write_pandas_csv(data / SOCIAL_NETWORK, social_network(rng, w))
    say(f"wrote {SOCIAL_NETWORK} ({w.scale.social_users:,} rows)")
    tick = reporter.progress(BIG_MATRIX, w.scale.n_users, "users")
    write_arrow_csv(data / BIG_MATRIX, BIG_HEADER, big_tables(rng, w, tick))
    say(f"wrote {BIG_MATRIX} ({w.scale.big_rows:,} rows)")
    small, truth = small_and_truth(rng, w)
    write_arrow_csv(data / SMALL_MATRIX, BIG_HEADER, iter([small]))
    say(f"wrote {SMALL_MATRIX} ({small.num_rows:,} rows)")
    write_arrow_csv(out / GROUND_TRUTH, ["user_id", "video_id", "expected_watch_ratio"], iter([truth]))
    say(f"wrote {GROUND_TRUTH} ({truth.num_rows:,} rows)")
    return data
