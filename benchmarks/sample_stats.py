"""Generate a synthetic KuaiRec sample and print each of the real dataset's statistics next to its target.

Run by hand (not part of the test suite):

    python benchmarks/sample_stats.py --scale full --out /tmp/recgen-full

Generation runs in a child process so that its wall time and peak RSS are measured alone; the statistics
are then read back from the CSVs. Count targets of the per-user and per-video distributions are scaled to
the sample (per-user rows by n_videos / 10,728, per-video rows by n_users / 7,176).
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from recgen.constants import (
    BIG_MATRIX,
    CAPTION_CATEGORY,
    GROUND_TRUTH,
    ITEM_CATEGORIES,
    ITEM_DAILY_FEATURES,
    SMALL_MATRIX,
    SOCIAL_NETWORK,
)
from recgen.sample.params import REAL_USERS, REAL_VIDEOS, SCALES


def _generate(out: Path, scale: str, seed: int) -> tuple[float, float]:
    """Wall seconds and peak RSS (MiB) of generate_sample in a fresh interpreter."""
    code = f"from recgen.sample import generate_sample; generate_sample({str(out)!r}, {scale!r}, {seed}, print)"
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True)
    wall = time.perf_counter() - start
    return wall, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024


def _statistics(out: Path, scale: str) -> list[tuple[str, float, float]]:
    """(name, measured, target) for every statistic; targets of scale-dependent counts are scaled."""
    sc = SCALES[scale]
    per_user, per_video = sc.n_videos / REAL_VIDEOS, sc.n_users / REAL_USERS
    data = next(out.glob("*/data"))
    cols = ["user_id", "video_id", "play_duration", "video_duration", "date", "timestamp", "watch_ratio"]
    big = pd.read_csv(data / BIG_MATRIX, engine="pyarrow", usecols=cols)
    rows: list[tuple[str, float, float]] = []

    def add(name: str, value: float, target: float) -> None:
        rows.append((name, float(value), float(target)))

    add("big rows", len(big), sc.big_rows)
    add("big exact duplicate rows", big.duplicated().sum(), sc.big_duplicates)
    pairs = big[["user_id", "video_id"]].drop_duplicates()
    add("big distinct pairs", len(pairs), sc.big_pairs)
    wr = big.watch_ratio
    add("big watch_ratio median", wr.median(), 0.723471)
    add("big watch_ratio q25", wr.quantile(0.25), 0.314825)
    add("big watch_ratio q75", wr.quantile(0.75), 1.177644)
    add("big watch_ratio mean", wr.mean(), 0.944506)
    add("big share watch_ratio > 1", (wr > 1).mean(), 0.3382)
    add("big share watch_ratio < 0.1", (wr < 0.1).mean(), 0.0888)
    add("big share watch_ratio > 5", (wr > 5).mean(), 0.0092)
    add("big share watch_ratio == 0", (wr == 0).mean(), 0.0192)
    add("big watch_ratio max", wr.max(), 573.457143)
    add("big play_duration median (ms)", big.play_duration.median(), 7277)
    add("big play_duration q25 (ms)", big.play_duration.quantile(0.25), 4218)
    add("big play_duration q75 (ms)", big.play_duration.quantile(0.75), 10350)
    add("big video_duration median (ms)", big.video_duration.median(), 9636)
    add("big video_duration q25 (ms)", big.video_duration.quantile(0.25), 7434)
    add("big video_duration q75 (ms)", big.video_duration.quantile(0.75), 12179)
    add("big video_duration min (ms)", big.video_duration.min(), 140)
    add("corr(log play, log duration), wr>0", _log_corr(big), 0.0)
    users = big.groupby("user_id").size()
    add("rows per user min", users.min(), 100 * per_user)
    add("rows per user q25", users.quantile(0.25), 883 * per_user)
    add("rows per user median", users.median(), 1846.5 * per_user)
    add("rows per user q75", users.quantile(0.75), 2461 * per_user)
    add("rows per user max", users.max(), 16_015 * per_user)
    dedup = big.drop_duplicates()
    videos = dedup.groupby("video_id").size().reindex(range(sc.n_videos), fill_value=0)
    add("de-dup rows per video median", videos.median(), 228 * per_video)
    add("de-dup rows per video mean", videos.mean(), 1078.02 * per_video)
    add("de-dup rows per video max", videos.max(), 24_173 * per_video)
    add("de-dup rows per video min", videos.min(), 1)
    days = pd.to_datetime(big.date.astype(str), format="%Y%m%d")
    day0 = pd.Timestamp("2020-07-05")
    for q, target in ((0.25, "2020-08-02"), (0.5, "2020-08-06"), (0.75, "2020-08-27")):
        add(
            f"big date q{int(q * 100)} (days after Jul 5)",
            (days.quantile(q) - day0).days,
            (pd.Timestamp(target) - day0).days,
        )
    user_day = big.groupby(["user_id", "date"]).size()
    add("big rows per user-day median", user_day.median(), 42 * per_user)
    add("big rows per user-day mean", user_day.mean(), 66.54 * per_user)
    del big, dedup, pairs

    small = pd.read_csv(data / SMALL_MATRIX, engine="pyarrow")
    add("small rows", len(small), sc.small_rows)
    add("small rows without time", small.time.isna().sum(), sc.small_untimed)
    add("small share without time", small.time.isna().mean(), 0.0389)
    swr = small.watch_ratio
    add("small watch_ratio median", swr.median(), 0.769167)
    add("small watch_ratio q25", swr.quantile(0.25), 0.467577)
    add("small watch_ratio q75", swr.quantile(0.75), 1.12059)
    add("small watch_ratio mean", swr.mean(), 0.907069)
    add("small share watch_ratio > 5", (swr > 5).mean(), 0.0049)
    add("small play_duration median (ms)", small.play_duration.median(), 7549)
    add("small video_duration min (ms)", small.video_duration.min(), 3067)
    truth = pd.read_csv(out / GROUND_TRUTH, engine="pyarrow")
    add("ground truth rows", len(truth), sc.small_rows)
    del small

    daily = pd.read_csv(data / ITEM_DAILY_FEATURES, engine="pyarrow")
    add("daily rows", len(daily), sc.daily_rows)
    add("daily rows per video", len(daily) / daily.video_id.nunique(), 32.0)
    add("daily share video_duration NaN", daily.video_duration.isna().mean(), 0.0309)
    add("daily share video_tag_id 0", (daily.video_tag_id == 0).mean(), 0.0945)
    add("daily share collect_cnt NaN", daily.collect_cnt.isna().mean(), 0.2030)
    add("daily share NORMAL", (daily.video_type == "NORMAL").mean(), 0.9966)
    del daily

    cap = pd.read_csv(data / CAPTION_CATEGORY, lineterminator="\n")
    add("captions rows", len(cap), sc.n_videos)
    add("captions rows under default read_csv", len(pd.read_csv(data / CAPTION_CATEGORY)), sc.n_videos + 4)
    add("captions share UNKNOWN cover text", (cap.manual_cover_text == "UNKNOWN").mean(), 0.624)
    add("captions share empty caption", cap.caption.isna().mean(), 0.126)
    add("captions share [] topic_tag", (cap.topic_tag == "[]").mean(), 0.430)
    add("captions distinct first-level ids", cap.first_level_category_id.nunique(), 39)
    add("captions share 2nd level unknown", (cap.second_level_category_id == -124).mean(), 3583 / 10728)
    add("captions share 3rd level unknown", (cap.third_level_category_id == -124).mean(), 6832 / 10728)
    feats = pd.read_csv(data / ITEM_CATEGORIES)
    n_tags = feats.feat.str.count(",") + 1
    add("item_categories share single-tag", (n_tags == 1).mean(), 8970 / 10728)
    add("item_categories mean tags per video", n_tags.mean(), 1.183166)
    social = pd.read_csv(data / SOCIAL_NETWORK)
    add("social rows", len(social), sc.social_users)
    add("social friend entries", (social.friend_list.str.count(",") + 1).sum(), sc.social_entries)
    return rows


def _log_corr(big: pd.DataFrame) -> float:
    """Play time is roughly independent of video length (so watch_ratio ~ const / length)."""
    played = big[big.play_duration > 0]
    pos = played.sample(min(len(played), 500_000), random_state=0)
    return float(np.corrcoef(np.log(pos.play_duration), np.log(pos.video_duration))[0, 1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", default="small", choices=list(SCALES))
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--out", type=Path, default=Path("/tmp/recgen-sample"))
    args = parser.parse_args()
    wall, rss = _generate(args.out, args.scale, args.seed)
    print(f"\nscale={args.scale} seed={args.seed}: generated in {wall:.1f} s, peak RSS {rss:,.0f} MiB\n")
    print(f"{'statistic':48s} {'sample':>14s} {'target':>14s} {'rel. diff':>10s}")
    for name, value, target in _statistics(args.out, args.scale):
        rel = f"{(value - target) / abs(target):+.1%}" if target else "n/a"
        print(f"{name:48s} {value:14.6g} {target:14.6g} {rel:>10s}")


if __name__ == "__main__":
    main()
