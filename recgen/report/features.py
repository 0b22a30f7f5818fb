"""Report sections on the seed model's 15 video features: correlations, relation to watch ratio, PCA."""

from __future__ import annotations

import numpy as np
import pandas as pd

from recgen import features
from recgen.report.page import ReportPage
from recgen.report.scans import MIN_SUPPORT

FEATURE_QUANTILES = 10


def video_features(page: ReportPage) -> None:
    video_ids = page.videos.index.to_numpy(np.int64)
    catalog = features.Catalog(user_ids=np.empty(0, np.int64), video_ids=np.sort(video_ids))
    matrix, names = features.seed_video_features(page.engine, catalog)
    frame = pd.DataFrame(matrix.astype(float), columns=list(names), index=catalog.video_ids)
    corr = frame.corr().to_numpy()
    page.chart(
        "correlations",
        "feature_correlations",
        page.charts.heatmap(corr, list(names), title="Correlations of the seed's 15 video features"),
        "Pearson correlations over videos (daily statistics averaged per video, missing values at the "
        "median, as the seed model sees them). "
        "Counts move together; rates carry separate information.",
    )
    upper = np.triu_indices(len(names), 1)
    for i, j in zip(*upper, strict=True):
        page.add(
            "correlations",
            f"pearson.{names[i]}.{names[j]}",
            corr[i, j],
            "-1..1",
            f"Correlation over videos of {names[i]} and {names[j]}",
        )
    strongest = np.argsort(-np.abs(corr[upper]))[:5]
    page.table(
        "correlations",
        ["feature", "feature", "correlation"],
        [[names[upper[0][i]], names[upper[1][i]], corr[upper][i]] for i in strongest],
        "Most correlated pairs",
    )
    target = page.train_video["mean_wr"].reindex(frame.index)
    supported = page.train_video["n"].reindex(frame.index).fillna(0) >= MIN_SUPPORT
    panels, rows = {}, []
    for name in names:
        x, y = frame.loc[supported, name], target[supported]
        spearman = x.corr(y, method="spearman") if supported.sum() > 2 else np.nan
        page.add(
            "features",
            f"spearman.{name}",
            spearman,
            "-1..1",
            f"Rank correlation of {name} and the video's mean training watch ratio",
        )
        rows.append([name, spearman])
        if supported.sum() >= FEATURE_QUANTILES:
            deciles = pd.qcut(x.rank(method="first"), FEATURE_QUANTILES, labels=False) + 1
            means = y.groupby(deciles).mean()
            panels[name] = (means.index.to_numpy(float), means.to_numpy(float))
    rows.sort(key=lambda r: -abs(r[1]) if np.isfinite(r[1]) else 0)
    page.chart(
        "features",
        "feature_spearman",
        page.charts.bars(
            [r[0] for r in rows],
            [r[1] for r in rows],
            title="Rank correlation with the video's mean watch ratio",
            xlabel="Spearman correlation",
            signed=True,
        ),
        f"Videos with at least {MIN_SUPPORT} training rows.",
    )
    if panels:
        page.chart(
            "features",
            "feature_deciles",
            page.charts.small_multiples(panels, ylabel="mean watch ratio"),
            "Mean watch ratio of the videos in each decile of a feature (1 = lowest tenth).",
        )
    page.feature_ranking = rows
    from sklearn.decomposition import PCA

    pca = PCA(n_components=2, random_state=0)
    points = pca.fit_transform(frame.to_numpy())
    ratio = pca.explained_variance_ratio_
    for i, value in enumerate(ratio):
        page.add(
            "pca",
            f"explained_variance_pc{i + 1}",
            value,
            "share (0..1)",
            f"Share of the scaled features' variance along principal component {i + 1}",
        )
    color = target.to_numpy(float)
    has = np.isfinite(color)
    page.chart(
        "pca",
        "pca_videos",
        page.charts.scatter(
            points[has, 0],
            points[has, 1],
            color=color[has],
            color_label="mean watch ratio",
            title="Videos on the first two principal components",
            xlabel=f"PC1 ({ratio[0]:.0%} of variance)",
            ylabel=f"PC2 ({ratio[1]:.0%} of variance)",
        ),
        (
            "Each point a video with training rows, coloured by its mean watch ratio (colour scale clipped to "
            "the 2nd-98th percentile)."
        ),
    )
    loadings = pd.DataFrame(pca.components_.T, index=list(names), columns=["PC1", "PC2"])
    top = loadings.abs().sum(axis=1).nlargest(6).index
    page.table(
        "pca",
        ["feature", "PC1 loading", "PC2 loading"],
        [[n, loadings.loc[n, "PC1"], loadings.loc[n, "PC2"]] for n in top],
    )
