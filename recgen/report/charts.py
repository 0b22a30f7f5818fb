"""Server-side charts for the report and the Datasette pages: matplotlib figures rendered to PNG (Agg).

Every function takes aggregates (a few thousand numbers at most, never the 12M interaction rows) and returns
PNG bytes. No pyplot: figures are plain `Figure` objects, so pages can render them in worker threads; a lock
serialises the rendering itself, which shares matplotlib's font cache.

Chinese category names need a CJK font, which most servers lack: labels go through `label()`, which keeps
the Chinese only when such a font is installed and otherwise shows recgen's English name.
"""

from __future__ import annotations

import base64
import io
import threading
from collections.abc import Mapping, Sequence
from functools import lru_cache

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
from matplotlib import font_manager  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from recgen.constants import RUN_MODEL  # noqa: E402
from recgen.report.categories import FIRST_LEVEL_ENGLISH  # noqa: E402

DPI = 100
COLORS = ("#3b6ea5", "#d9822b", "#5a9e58", "#b8474f", "#7d5ba6", "#8c6d46", "#c45ca2", "#6f6f6f")
MODEL_COLOR = COLORS[0]
CJK_FONTS = ("Noto Sans CJK SC", "Noto Sans CJK JP", "WenQuanYi Micro Hei", "WenQuanYi Zen Hei", "Droid Sans Fallback")
_LOCK = threading.Lock()


@lru_cache(maxsize=1)
def cjk_font() -> str | None:
    """The name of an installed font with Chinese glyphs, or None."""
    installed = {font.name for font in font_manager.fontManager.ttflist}
    return next((name for name in CJK_FONTS if name in installed), None)


def label(name: str | None) -> str:
    """A chart label for a category name: `Food 美食` with a CJK font, `Food` without one."""
    if name is None:
        return "(none)"
    english = FIRST_LEVEL_ENGLISH.get(name)
    if cjk_font():
        return f"{english} {name}" if english else name
    if english:
        return english
    return name if name.isascii() else "(non-Latin name)"


def data_uri(png: bytes) -> str:
    """An <img src> for PNG bytes, so a page needs no second request and no file."""
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def _figure(width: float, height: float, ncols: int = 1, nrows: int = 1):
    fig = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False)
    for ax in axes.flat:
        ax.grid(True, color="#e5e5e5", linewidth=0.8)
        ax.set_axisbelow(True)
        for side in ("top", "right"):
            ax.spines[side].set_visible(False)
    return fig, axes


def _png(fig: Figure) -> bytes:
    buffer = io.BytesIO()
    with _LOCK:
        if cjk_font():
            matplotlib.rcParams["font.sans-serif"] = [cjk_font(), "DejaVu Sans"]
        fig.savefig(buffer, format="png", dpi=DPI)
    return buffer.getvalue()


def metric_history(runs: Sequence[int], series: Mapping[str, Sequence[float | None]], metrics: Sequence[str]) -> bytes:
    """One panel per metric: each model's value over published runs (the run's model drawn bold)."""
    fig, axes = _figure(4.2 * len(metrics), 3.2, ncols=len(metrics))
    for ax, metric in zip(axes.flat, metrics, strict=True):
        for i, (model, values) in enumerate(series.get(metric, {}).items()):
            y = np.array([np.nan if v is None else v for v in values], dtype=float)
            ax.plot(
                runs,
                y,
                marker="o",
                color=COLORS[i % len(COLORS)],
                linewidth=2.5 if model == RUN_MODEL else 1.2,
                label=model,
            )
        ax.set_title(metric)
        ax.set_xlabel("run id")
        if len(runs) <= 12:  # a tick per run: a lone run would otherwise get fractional ticks around it
            ax.set_xticks(list(runs))
        else:
            ax.xaxis.get_major_locator().set_params(integer=True)
    axes.flat[0].legend(fontsize=8, frameon=False)
    return _png(fig)


def distributions(panels: Mapping[str, np.ndarray], *, bins: int = 20, value_range=(0.0, 1.0), ylabel="users") -> bytes:
    """Side-by-side histograms with the mean marked (per-user metrics of a run)."""
    fig, axes = _figure(4.2 * len(panels), 3.0, ncols=len(panels))
    for ax, (name, values) in zip(axes.flat, panels.items(), strict=True):
        values = np.asarray(values, dtype=float)
        values = values[np.isfinite(values)]
        ax.hist(values, bins=bins, range=value_range, color=MODEL_COLOR, edgecolor="white")
        if len(values):
            ax.axvline(values.mean(), color=COLORS[3], linestyle="--", linewidth=1.2)
            ax.set_title(f"{name} (mean {values.mean():.3f}, n = {len(values):,})", fontsize=10)
        ax.set_xlabel(name)
        ax.set_ylabel(ylabel)
    return _png(fig)


def grouped_bars(
    labels: Sequence[str],
    groups: Mapping[str, Sequence[float]],
    *,
    title: str,
    xlabel: str,
    percent: bool = False,
    width: float = 7.0,
) -> bytes:
    """Horizontal grouped bars: one row per label (first label on top), one bar per group."""
    n, k = len(labels), max(len(groups), 1)
    fig, axes = _figure(width, max(2.0, 0.3 * n * max(k, 1.5) / 1.5 + 1.0))
    ax = axes[0, 0]
    y = np.arange(n)
    height = 0.8 / k
    for i, (name, values) in enumerate(groups.items()):
        scale = 100.0 if percent else 1.0
        ax.barh(y + (i - (k - 1) / 2) * height, np.asarray(values, float) * scale, height, label=name, color=COLORS[i])
    ax.set_yticks(y, labels, fontsize=8)
    ax.invert_yaxis()
    ax.set_title(title, fontsize=10)
    ax.set_xlabel(xlabel + (" (%)" if percent else ""))
    ax.grid(True, axis="x", color="#e5e5e5")
    ax.grid(False, axis="y")
    if len(groups) > 1:
        ax.legend(fontsize=8, frameon=False, loc="lower right")
    return _png(fig)


def lorenz(curves: Mapping[str, np.ndarray], *, title: str, xlabel: str, ylabel: str) -> bytes:
    """Lorenz curves of counts (e.g. rows per video), with each curve's Gini coefficient in its label."""
    fig, axes = _figure(4.6, 4.0)
    ax = axes[0, 0]
    ax.plot([0, 1], [0, 1], color="#999999", linewidth=1, linestyle=":", label="perfect equality")
    for i, (name, counts) in enumerate(curves.items()):
        x, y, gini = lorenz_points(counts)
        ax.plot(x, y, color=COLORS[i], linewidth=2, label=f"{name} (Gini {gini:.2f})")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_title(title, fontsize=10)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.legend(fontsize=8, frameon=False, loc="upper left")
    return _png(fig)


def lorenz_points(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """(share of items, share of the total, Gini) with items sorted from the least to the most counted."""
    values = np.sort(np.asarray(counts, dtype=float))
    total = values.sum()
    if len(values) == 0 or total <= 0:
        return np.array([0.0, 1.0]), np.array([0.0, 1.0]), 0.0
    y = np.concatenate([[0.0], np.cumsum(values) / total])
    x = np.linspace(0.0, 1.0, len(y))
    gini = float(1.0 - np.sum((y[1:] + y[:-1]) * np.diff(x)))  # 1 - 2 x area under the curve
    return x, y, gini


def histogram(
    series: Mapping[str, np.ndarray],
    *,
    bins,
    title: str,
    xlabel: str,
    ylabel: str,
    log_x: bool = False,
    log_y: bool = False,
    density: bool = False,
    markers: Sequence[float] = (),
    weights: Mapping[str, np.ndarray] | None = None,
) -> bytes:
    """Histograms of one or more series on shared bins (pre-binned counts via `weights` are welcome)."""
    fig, axes = _figure(6.0, 3.4)
    ax = axes[0, 0]
    many = len(series) > 1
    for i, (name, values) in enumerate(series.items()):
        ax.hist(
            values,
            bins=bins,
            weights=None if weights is None else weights[name],
            density=density,
            histtype="step" if many else "bar",
            linewidth=2 if many else 0.5,
            color=COLORS[i],
            edgecolor=COLORS[i] if many else "white",
            label=name,
        )
    for value in markers:
        ax.axvline(value, color="#888888", linestyle=":", linewidth=1)
    if log_x:
        ax.set_xscale("log")
    if log_y:
        ax.set_yscale("log")
    ax.set_title(title, fontsize=10)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if many:
        ax.legend(fontsize=8, frameon=False)
    return _png(fig)


def binned_means(
    centers: np.ndarray,
    means: Mapping[str, np.ndarray],
    counts: np.ndarray,
    *,
    title: str,
    xlabel: str,
    ylabel: str,
    log_x: bool = False,
) -> bytes:
    """Mean of a quantity per bin (lines) over the bin's row count (grey bars on a second axis)."""
    fig, axes = _figure(6.4, 3.4)
    ax = axes[0, 0]
    other = ax.twinx()
    widths = np.diff(np.r_[centers, centers[-1] * 1.3]) * 0.8 if log_x else None
    other.bar(centers, counts, width=widths if widths is not None else 0.8, color="#dddddd", zorder=0)
    other.set_ylabel("rows", color="#999999")
    other.spines["top"].set_visible(False)
    ax.set_zorder(other.get_zorder() + 1)
    ax.patch.set_visible(False)
    for i, (name, values) in enumerate(means.items()):
        ax.plot(centers, values, marker="o", color=COLORS[i], linewidth=2, label=name)
    if log_x:
        ax.set_xscale("log")
        other.set_xscale("log")
    ax.set_title(title, fontsize=10)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if len(means) > 1:
        ax.legend(fontsize=8, frameon=False)
    return _png(fig)


def heatmap(matrix: np.ndarray, labels: Sequence[str], *, title: str) -> bytes:
    """A correlation matrix (-1..1), values printed in the cells."""
    n = len(labels)
    fig, axes = _figure(0.55 * n + 3.0, 0.5 * n + 1.6)
    ax = axes[0, 0]
    ax.grid(False)
    image = ax.imshow(matrix, cmap="RdBu_r", vmin=-1, vmax=1)
    ax.set_xticks(range(n), labels, rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(n), labels, fontsize=8)
    for i in range(n):
        for j in range(n):
            value = matrix[i, j]
            if np.isfinite(value):
                ax.text(
                    j,
                    i,
                    f"{value:.2f}",
                    ha="center",
                    va="center",
                    fontsize=6,
                    color="white" if abs(value) > 0.6 else "black",
                )
    fig.colorbar(image, ax=ax, shrink=0.8, label="Pearson correlation")
    ax.set_title(title, fontsize=10)
    return _png(fig)


def small_multiples(panels: Mapping[str, tuple[np.ndarray, np.ndarray]], *, ylabel: str, ncols: int = 5) -> bytes:
    """One small line chart per feature: the mean of y per quantile bin of the feature."""
    nrows = int(np.ceil(len(panels) / ncols))
    fig, axes = _figure(2.6 * ncols, 2.1 * nrows, ncols=ncols, nrows=nrows)
    for ax in axes.flat[len(panels) :]:
        ax.set_visible(False)
    for ax, (name, (x, y)) in zip(axes.flat, panels.items(), strict=False):
        ax.plot(x, y, marker=".", color=MODEL_COLOR)
        ax.set_title(name, fontsize=9)
        ax.tick_params(labelsize=7)
    for row in axes:
        row[0].set_ylabel(ylabel, fontsize=8)
    return _png(fig)


def scatter(
    x: np.ndarray,
    y: np.ndarray,
    *,
    title: str,
    xlabel: str,
    ylabel: str,
    color: np.ndarray | None = None,
    color_label: str = "",
    diagonal: bool = False,
) -> bytes:
    """A scatter plot (at most ~10k points: per-video aggregates), optionally coloured by a value."""
    fig, axes = _figure(5.6, 4.2)
    ax = axes[0, 0]
    if color is None:
        ax.scatter(x, y, s=5, alpha=0.4, color=MODEL_COLOR, linewidths=0)
    else:
        low, high = np.nanpercentile(color, [2, 98]) if len(color) else (0, 1)
        points = ax.scatter(x, y, s=5, c=color, cmap="viridis", vmin=low, vmax=high, alpha=0.7, linewidths=0)
        fig.colorbar(points, ax=ax, label=color_label)
    if diagonal and len(x):
        top = float(np.nanmax([np.nanmax(x), np.nanmax(y)]))
        ax.plot([0, top], [0, top], color="#999999", linestyle=":", linewidth=1)
    ax.set_title(title, fontsize=10)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    return _png(fig)


def bars(labels: Sequence[str], values: Sequence[float], *, title: str, xlabel: str, signed: bool = False) -> bytes:
    """Horizontal bars, one per label (first on top); negative values in a second colour if `signed`."""
    values = np.asarray(values, dtype=float)
    fig, axes = _figure(6.0, max(2.0, 0.28 * len(labels) + 1.0))
    ax = axes[0, 0]
    colors = [COLORS[3] if signed and v < 0 else MODEL_COLOR for v in values]
    ax.barh(np.arange(len(labels)), values, color=colors)
    ax.set_yticks(np.arange(len(labels)), labels, fontsize=8)
    ax.invert_yaxis()
    ax.axvline(0, color="#555555", linewidth=0.8)
    ax.set_title(title, fontsize=10)
    ax.set_xlabel(xlabel)
    return _png(fig)
