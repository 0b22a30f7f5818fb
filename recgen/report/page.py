"""The report page being computed: its sections' blocks (text, tables, charts) and its data_profile rows."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

import numpy as np
import pandas as pd
from sqlalchemy import Engine

from recgen.report.scans import Scans

Progress = Callable[[str], None]

# (id, heading) of every section, in order; the test checks that each heading is in the page.
SECTIONS = (
    ("overview", "Dataset overview and sizes"),
    ("quality", "Data quality"),
    ("users", "Users"),
    ("videos", "Videos"),
    ("watch_ratio", "Watch-ratio distribution"),
    ("duration", "Watch ratio and video duration"),
    ("exposure", "Exposure skew"),
    ("matrices", "Small matrix vs big matrix"),
    ("correlations", "Video feature correlations"),
    ("features", "Video features and watch ratio"),
    ("pca", "PCA of video features"),
    ("summary", "Summary"),
)


@dataclass
class Profile:
    """The data_profile rows, collected while the report is computed."""

    rows: list[dict] = field(default_factory=list)

    def add(self, section: str, name: str, value, unit: str, description: str) -> None:
        number = None if value is None or (isinstance(value, float) and not np.isfinite(value)) else float(value)
        self.rows.append({"section": section, "name": name, "value": number, "unit": unit, "description": description})

    def get(self, section: str, name: str) -> float | None:
        return next((r["value"] for r in self.rows if r["section"] == section and r["name"] == name), None)


def _fmt(value, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and not np.isfinite(value)):
        return "–"
    if isinstance(value, int | np.integer) or float(value).is_integer() and abs(value) >= 100:
        return f"{int(value):,}"
    return f"{value:,.{digits}f}"


class ReportPage:
    """The report being computed, handed to every section function in turn.

    `recgen.report` attaches the scans and the frames derived from them before the sections run; sections
    leave the facts the summary quotes.
    """

    charts: ModuleType  # recgen.report.charts, imported only when a report is drawn
    scans: Scans
    videos: pd.DataFrame  # video_id -> caption, category, video_duration
    train_video: pd.DataFrame  # video_id -> n, sum_wr, mean_wr
    eval_video: pd.DataFrame
    train_hist: np.ndarray  # rows per watch-ratio bin
    eval_hist: np.ndarray
    counts: dict[str, int]  # rows per table (overview)
    duration_spread: tuple | None  # mean watch ratio of the shortest and longest duration bins (duration)
    gini: float  # of training rows per video (exposure)
    feature_ranking: list[list]  # (feature, Spearman correlation), strongest first (video_features)

    def __init__(self, engine: Engine, out_dir: Path, say: Progress):
        self.engine, self.out_dir, self.say = engine, out_dir, say
        self.profile = Profile()
        self.sections: dict[str, dict] = {key: {"heading": heading, "blocks": []} for key, heading in SECTIONS}

    # --- output helpers
    def chart(self, section: str, name: str, png: bytes, caption: str) -> None:
        path = self.out_dir / f"{name}.png"
        path.write_bytes(png)
        self.sections[section]["blocks"].append({"kind": "image", "src": path.name, "caption": caption})

    def para(self, section: str, html_text: str) -> None:
        self.sections[section]["blocks"].append({"kind": "text", "text": html_text})

    def table(self, section: str, header: list[str], rows: list[list], caption: str = "") -> None:
        cells = [
            [_fmt(v) if isinstance(v, float | int | np.number) and not isinstance(v, bool) else v for v in r]
            for r in rows
        ]
        self.sections[section]["blocks"].append({"kind": "table", "header": header, "rows": cells, "caption": caption})

    def add(self, section: str, name: str, value, unit: str, description: str) -> None:
        self.profile.add(section, name, value, unit, description)
