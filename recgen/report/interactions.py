"""Report sections on the interactions: watch-ratio distribution, duration, exposure skew, small vs big matrix."""

from __future__ import annotations

import numpy as np
import pandas as pd

from recgen.constants import RELEVANT_WATCH_RATIO
from recgen.report.page import ReportPage
from recgen.report.scans import BINS_PER_UNIT, MIN_SUPPORT, OVERFLOW_BIN, share_above

THRESHOLDS = (0.5, 0.8, 1.0, 1.2, 1.5, 2.0)
DURATION_EDGES_S = (0, 5, 7, 10, 15, 20, 30, 45, 60, 90, 120, 180, 300, np.inf)


def _gini(counts: np.ndarray) -> float:
    from recgen.report.charts import lorenz_points

    return lorenz_points(counts)[2]


def watch_ratio(page: ReportPage) -> None:
    edges = np.arange(OVERFLOW_BIN + 1) / BINS_PER_UNIT  # bin b covers (edges[b-1], edges[b]]
    centers = np.r_[0.0, edges[1:] - 0.5 / BINS_PER_UNIT]
    centers[-1] = 5.0 + 0.5 / BINS_PER_UNIT
    for name, hist in (("train", page.train_hist), ("eval", page.eval_hist)):
        page.add(
            "watch_ratio",
            f"share_above_5.{name}",
            hist[OVERFLOW_BIN] / max(hist.sum(), 1),
            "share (0..1)",
            f"Share of {name} rows with watch ratio > 5",
        )
    rows = []
    for threshold in THRESHOLDS:
        train, evaluation = share_above(page.train_hist, threshold), share_above(page.eval_hist, threshold)
        rows.append([f"> {threshold:g}", train, evaluation])
        for name, value in (("train", train), ("eval", evaluation)):
            page.add(
                "watch_ratio",
                f"share_above_{threshold:g}.{name}",
                value,
                "share (0..1)",
                f"Share of {name} rows with watch ratio > {threshold:g}",
            )
    page.chart(
        "watch_ratio",
        "watch_ratio_hist",
        page.charts.histogram(
            {"big_matrix (train)": centers, "small_matrix (eval)": centers},
            weights={
                "big_matrix (train)": page.train_hist / page.train_hist.sum(),
                "small_matrix (eval)": page.eval_hist / max(page.eval_hist.sum(), 1),
            },
            bins=np.r_[edges, 5.1] - 0.5 / BINS_PER_UNIT + 1e-9,
            title="Watch-ratio distribution (last bin: all ratios above 5)",
            xlabel="watch ratio (play time / video length)",
            ylabel="share of rows",
            markers=THRESHOLDS,
        ),
        "Share of rows per watch-ratio bin of 0.05; dotted lines at the thresholds 0.5, 0.8, 1, 1.2, 1.5 and 2.",
    )
    page.table(
        "watch_ratio",
        ["watch ratio", "share of big_matrix rows", "share of small_matrix rows"],
        rows,
        "Share of rows above each threshold (2 is the KuaiRec paper's positive).",
    )
    for name, frame in (("train", page.scans.train_users), ("eval", page.scans.eval_users)):
        total = frame["n"].sum()
        page.add(
            "watch_ratio",
            f"mean.{name}",
            frame["sum_wr"].sum() / total if total else None,
            "ratio",
            f"Mean watch ratio over {name} rows",
        )


def duration(page: ReportPage) -> None:
    frame = page.train_video.join(page.videos["video_duration"], how="inner").dropna(subset=["video_duration"])
    seconds = frame["video_duration"].to_numpy(float) / 1000
    edges = np.array(DURATION_EDGES_S, dtype=float)
    which = np.clip(np.searchsorted(edges, seconds, side="right") - 1, 0, len(edges) - 2)
    n = np.bincount(which, weights=frame["n"].to_numpy(float), minlength=len(edges) - 1)
    total = np.bincount(which, weights=frame["sum_wr"].to_numpy(float), minlength=len(edges) - 1)
    mean = np.divide(total, n, out=np.full_like(total, np.nan), where=n > 0)
    labels = [
        f"{edges[i]:g}-{edges[i + 1]:g} s" if np.isfinite(edges[i + 1]) else f">= {edges[i]:g} s"
        for i in range(len(edges) - 1)
    ]
    centers = np.array(
        [
            np.sqrt(max(edges[i], 1) * (edges[i + 1] if np.isfinite(edges[i + 1]) else edges[i] * 2))
            for i in range(len(edges) - 1)
        ]
    )
    keep = n > 0
    page.chart(
        "duration",
        "duration_watch_ratio",
        page.charts.binned_means(
            centers[keep],
            {"mean watch ratio": mean[keep]},
            n[keep],
            title="Mean watch ratio by video duration (training rows)",
            xlabel="video duration (s, log scale)",
            ylabel="mean watch ratio",
            log_x=True,
        ),
        (
            "Short videos are watched several times over, long ones abandoned: duration is the strongest "
            "single driver of watch ratio."
        ),
    )
    rows = [[labels[i], int(n[i]), mean[i]] for i in range(len(labels)) if n[i] > 0]
    page.table("duration", ["video duration", "training rows", "mean watch ratio"], rows)
    for i in np.flatnonzero(keep):
        page.add(
            "duration",
            f"mean_watch_ratio.{labels[i]}",
            mean[i],
            "ratio",
            f"Mean training watch ratio of videos lasting {labels[i]}",
        )
    corr = pd.Series(seconds).corr(pd.Series(frame["mean_wr"].to_numpy(float)), method="spearman")
    page.add(
        "duration",
        "spearman_duration_mean_watch_ratio",
        corr,
        "-1..1",
        "Rank correlation of video duration and the video's mean watch ratio",
    )
    page.duration_spread = (
        (mean[keep][0], mean[keep][-1], labels[np.flatnonzero(keep)[0]], labels[np.flatnonzero(keep)[-1]])
        if keep.any()
        else None
    )


def exposure(page: ReportPage) -> None:
    counts = np.zeros(len(page.videos))
    present = page.train_video["n"].reindex(page.videos.index).fillna(0).to_numpy(float)
    counts[: len(present)] = present
    gini = _gini(counts)
    ordered = np.sort(counts)[::-1]
    total = ordered.sum()
    shares = {
        p: ordered[: max(int(round(len(ordered) * p)), 1)].sum() / total if total else np.nan for p in (0.01, 0.1, 0.5)
    }
    page.add("exposure", "gini_rows_per_video", gini, "0..1", "Gini coefficient of training rows per catalogue video")
    for p, share in shares.items():
        page.add(
            "exposure",
            f"share_top_{p:g}",
            share,
            "share (0..1)",
            f"Share of training rows on the top {p:.0%} most exposed videos",
        )
    page.add(
        "exposure",
        "videos_without_rows",
        int((counts == 0).sum()),
        "videos",
        "Catalogue videos without a training row",
    )
    user_counts = page.scans.train_users["n"].to_numpy(float)
    page.chart(
        "exposure",
        "exposure_lorenz",
        page.charts.lorenz(
            {"rows per video": counts, "rows per user": user_counts},
            title="Exposure skew (Lorenz curves)",
            xlabel="share of videos / users, least exposed first",
            ylabel="share of training rows",
        ),
        f"The top 1% of videos hold {shares[0.01]:.1%} of training rows, the top 10% {shares[0.1]:.1%} "
        f"(Gini {gini:.2f}): "
        "big_matrix exposure is missing not at random, which popularity baselines exploit.",
    )
    page.gini = gini


def matrices(page: ReportPage) -> None:
    both = page.train_video.merge(page.eval_video, left_index=True, right_index=True, suffixes=("_train", "_eval"))
    both = both[both["n_train"] >= MIN_SUPPORT]
    corr = both["mean_wr_train"].corr(both["mean_wr_eval"]) if len(both) > 2 else np.nan
    page.add(
        "matrices",
        "videos_in_both",
        len(both),
        "videos",
        f"Small-matrix videos with at least {MIN_SUPPORT} training rows",
    )
    page.add(
        "matrices",
        "pearson_video_mean_train_eval",
        corr,
        "-1..1",
        "Correlation of a video's mean watch ratio in big_matrix and in small_matrix",
    )
    users = page.scans.train_users.merge(page.scans.eval_users, on="user_id", suffixes=("_train", "_eval"))
    user_corr = (
        (users["sum_wr_train"] / users["n_train"]).corr(users["sum_wr_eval"] / users["n_eval"])
        if len(users) > 2
        else np.nan
    )
    page.add("matrices", "eval_users_in_train", len(users), "users", "Small-matrix users who also have training rows")
    page.add(
        "matrices",
        "pearson_user_mean_train_eval",
        user_corr,
        "-1..1",
        "Correlation of a user's mean watch ratio in big_matrix and in small_matrix",
    )
    rows = []
    for label, hist, frame in (
        ("big_matrix (train)", page.train_hist, page.scans.train_users),
        ("small_matrix (eval)", page.eval_hist, page.scans.eval_users),
    ):
        total = frame["n"].sum()
        rows.append(
            [
                label,
                int(total),
                frame["sum_wr"].sum() / total if total else None,
                share_above(hist, 1.0),
                share_above(hist, RELEVANT_WATCH_RATIO),
            ]
        )
    page.table("matrices", ["matrix", "rows", "mean watch ratio", "share > 1", "share > 2"], rows)
    if len(both):
        top = float(np.nanpercentile(np.r_[both["mean_wr_train"], both["mean_wr_eval"]], 99))
        page.chart(
            "matrices",
            "matrices_video_means",
            page.charts.scatter(
                np.clip(both["mean_wr_train"], 0, top),
                np.clip(both["mean_wr_eval"], 0, top),
                title="Per-video mean watch ratio: big vs small matrix",
                xlabel="big_matrix (train)",
                ylabel="small_matrix (eval)",
                diagonal=True,
            ),
            f"Each point a video of the small matrix (correlation {corr:.2f}); the small matrix shows every "
            "video to every user, "
            "so a video's mean there is free of the exposure bias of big_matrix.",
        )
