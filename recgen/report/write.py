"""The data-analysis report: the seed notebook's exploration, computed from the database in seconds.

`write_report(engine, out_dir)` writes a self-contained `index.html` with its PNG charts beside it (relative
links, no external resources) and (re)writes the `data_profile` table: every number of the report in long
format (section, name, value, unit, description), for SQL users and for the Datasette pages.

The sections are computed by `report_dataset`, `report_interactions` and `report_features` from the grouped
scans of `report_scans`, onto a `report_page.ReportPage`; this module runs them and writes the files.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Callable
from importlib import resources
from pathlib import Path

import jinja2
from sqlalchemy import Engine, inspect, text

from recgen.errors import MissingInputError, OutputError
from recgen.report import dataset as report_dataset
from recgen.report import features as report_features
from recgen.report import interactions as report_interactions
from recgen.report.page import SECTIONS, Progress, ReportPage
from recgen.report.scans import histogram, per_video, query_frame, scan
from recgen.store.schema import data_profile

REPORT_FILE = "index.html"


def _compute(page: ReportPage) -> None:
    """Scan the interactions, then compute every section in page order."""
    from recgen.report import charts

    page.charts = charts
    page.say("report: scanning interactions (4 grouped scans, 2 at a time)")
    started = time.perf_counter()
    page.scans = scan(page.engine)
    page.say(f"report: scans done in {time.perf_counter() - started:.1f} s")
    page.videos = query_frame(
        page.engine,
        "SELECT video_id, caption, first_level_category_name AS category, video_duration FROM videos",
    ).set_index("video_id")
    page.train_video = per_video(page.scans.train_bins)
    page.eval_video = per_video(page.scans.eval_bins)
    page.train_hist = histogram(page.scans.train_bins)
    page.eval_hist = histogram(page.scans.eval_bins)
    for step in (
        report_dataset.overview,
        report_dataset.quality,
        report_dataset.users,
        report_dataset.video_stats,
        report_dataset.categories,
        report_interactions.watch_ratio,
        report_interactions.duration,
        report_interactions.exposure,
        report_interactions.matrices,
        report_features.video_features,
        _summary,
    ):
        step(page)


def _summary(page: ReportPage) -> None:
    p = page.profile
    items = [
        f"{page.counts['train_interactions']:,} training rows over {page.counts['users']:,} users and "
        f"{page.counts['videos']:,} videos; "
        f"{page.counts['eval_interactions']:,} rows in the fully observed small matrix (density "
        f"{p.get('overview', 'eval_density') or 0:.1%}).",
        f"Mean watch ratio {p.get('watch_ratio', 'mean.train') or 0:.2f} in big_matrix, "
        f"{p.get('watch_ratio', 'mean.eval') or 0:.2f} in small_matrix; "
        f"{p.get('watch_ratio', 'share_above_2.train') or 0:.1%} of training rows and "
        f"{p.get('watch_ratio', 'share_above_2.eval') or 0:.1%} "
        "of evaluation rows exceed 2 (the relevance threshold).",
    ]
    if page.duration_spread:
        short, long, short_label, long_label = page.duration_spread
        items.append(
            f"Duration dominates: videos of {short_label} average a watch ratio of {short:.2f}, videos of "
            f"{long_label} {long:.2f}."
        )
    items.append(f"Exposure is skewed (Gini {page.gini:.2f} of rows per video): popularity is a strong, biased signal.")
    if page.feature_ranking:
        best = page.feature_ranking[0]
        items.append(
            f"Of the seed's 15 features, {best[0]} tracks a video's mean watch ratio most closely (Spearman "
            f"{best[1]:.2f})."
        )
    page.sections["summary"]["blocks"].append({"kind": "list", "entries": items})


def _environment() -> jinja2.Environment:
    folder = resources.files("recgen.report") / "templates"
    return jinja2.Environment(loader=jinja2.FileSystemLoader(str(folder)), autoescape=True)


def write_data_profile(engine: Engine, rows: list[dict]) -> None:
    """Replace the data_profile table's rows."""
    with engine.begin() as conn:
        conn.execute(data_profile.delete())
        if rows:
            conn.execute(data_profile.insert(), rows)


def write_report(engine: Engine, out_dir: Path, progress: Progress | None = None) -> Path:
    """Compute the data-analysis report; write `out_dir/index.html`, its PNGs and the data_profile table.

    Returns the path of index.html. Raises MissingInputError when the database holds no interactions yet.
    """
    say = progress or (lambda _message: None)
    started = time.perf_counter()
    existing = set(inspect(engine).get_table_names())
    if not {"videos", "train_interactions", "eval_interactions"} <= existing:
        raise MissingInputError("the database has no KuaiRec data yet: run `recgen ingest` or `recgen run-batch` first")
    with engine.connect() as conn:
        if conn.execute(text("SELECT count(*) FROM videos")).scalar_one() == 0:
            raise MissingInputError("the database has no videos yet: run `recgen ingest` or `recgen run-batch` first")
    out_dir = Path(out_dir)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        for old in out_dir.glob("*.png"):
            old.unlink()
    except OSError as exc:
        raise OutputError(f"cannot write the report folder {out_dir}: {exc}") from exc
    report = ReportPage(engine, out_dir, say)
    _compute(report)
    seconds = time.perf_counter() - started
    report.add("overview", "report_seconds", seconds, "s", "Time taken to compute the report")
    generated = dt.datetime.now(dt.UTC)
    report.add("overview", "generated_at", generated.timestamp(), "unix time (s)", "When the report was computed (UTC)")
    html = (
        _environment()
        .get_template("report.html")
        .render(
            sections=[{"id": key, **report.sections[key]} for key, _ in SECTIONS],
            generated=generated.isoformat(timespec="seconds"),
            seconds=seconds,
            database=engine.url.render_as_string(hide_password=True),
        )
    )
    path = out_dir / REPORT_FILE
    path.write_text(html, encoding="utf-8")
    write_data_profile(engine, report.profile.rows)
    n_charts = len(list(out_dir.glob("*.png")))
    say(f"report: {n_charts} charts, {len(report.profile.rows)} data_profile rows in {seconds:.1f} s -> {path}")
    return path


def refresh_report(engine: Engine, out_dir: Path, data_changed: bool, log: Callable[[str], None]) -> bool:
    """The data-analysis report follows the data: rewritten when an input file changed (or it is missing).

    Called once a run is published, so a failure here is logged and returns False, never raises."""
    if not data_changed and (out_dir / REPORT_FILE).is_file():
        return True
    try:
        write_report(engine, out_dir, progress=log)
    except Exception as exc:  # even a bug in the report must not turn a published night into a failure
        log(f"warning: the data-analysis report was not written: {type(exc).__name__}: {exc}")
        return False
    return True


def start_report(engine: Engine, out_dir: Path, data_changed: bool, log: Callable[[str], None]) -> Callable[[], bool]:
    """`refresh_report` in a thread beside the rest of the run (it reads the loaded tables, which the run no
    longer writes); returns the function that waits for it, True if the report is in place."""
    outcome: list[bool] = []
    thread = threading.Thread(
        target=lambda: outcome.append(refresh_report(engine, out_dir, data_changed, log)),
        name="recgen-report",
        daemon=True,  # a run stopped by a signal does not wait for it
    )
    thread.start()

    def wait() -> bool:
        thread.join()
        return bool(outcome and outcome[0])

    return wait
