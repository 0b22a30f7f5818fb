"""The nightly job: lock, run record, ingest -> features -> train/reload -> recommend -> evaluate -> publish.

Everything a run writes carries its run id; the `latest_*` views show a run only once the last transaction
marks it published, so readers never see half a run and a failed night leaves the previous results in place.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from sqlalchemy import Engine, delete, func, select, update
from sqlalchemy.engine import make_url

from recgen import features, recommend
from recgen.constants import (
    DEFAULT_MODEL,
    EMBEDDED_SAMPLE_SCALE,
    GROUND_TRUTH,
    KEEP_RUNS,
    LOCK_FILE,
    MAX_REJECTED,
    MODEL_SEED,
    MODELS_SUBDIR,
    OUTPUT_DIR,
    REPORT_SUBDIR,
    SAMPLE_SUBDIR,
    SEED,
    SOURCE_CONTENT,
    SOURCE_MODEL,
    SOURCE_POPULARITY,
    STATUS_FAILED,
    STATUS_PUBLISHED,
    STATUS_RUNNING,
    TOP_K,
)
from recgen.errors import EXIT_INTERNAL, ConfigError, LockedError, MissingInputError, RecgenError
from recgen.evaluation import evaluate
from recgen.ingest.load import ingest
from recgen.models import baselines as baseline_scorers
from recgen.models import keras_base as model
from recgen.models import registry as families
from recgen.progress import Reporter
from recgen.report import write as report
from recgen.report.write import REPORT_FILE
from recgen.store import fts as publish
from recgen.store.engine import checkpoint, database_url, get_engine, insert_frame, migrate, utc_now
from recgen.store.schema import models, recommendations, run_metrics, runs, user_metrics

Log = Callable[[str], None]
RETRAIN_CHOICES = ("auto", "always", "never")
RUN_OUTPUTS = (recommendations, user_metrics, run_metrics)


@dataclass
class BatchOptions:
    db: str = str(OUTPUT_DIR / "recs.db")
    data_dir: str | None = None
    retrain: str = "auto"
    model: str = DEFAULT_MODEL
    k: int = TOP_K
    seed: int = SEED
    sample_scale: str = EMBEDDED_SAMPLE_SCALE
    keep_runs: int = KEEP_RUNS
    max_rejected: float = MAX_REJECTED

    @property
    def output_dir(self) -> Path:
        """The database's folder for SQLite (models, sample and lock live beside it), else ./output."""
        url = make_url(database_url(self.db))
        if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
            return Path(url.database).parent
        return OUTPUT_DIR

    @property
    def models_dir(self) -> Path:
        return self.output_dir / MODELS_SUBDIR

    @property
    def sample_dir(self) -> Path:
        return self.output_dir / SAMPLE_SUBDIR

    @property
    def report_dir(self) -> Path:
        return self.output_dir / REPORT_SUBDIR


@dataclass
class RunSummary:
    run_id: int
    status: str
    seconds: float
    synthetic: bool
    trained: bool
    model_id: int
    metrics: dict[str, dict[str, float]] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)


@contextmanager
def job_lock(path: Path) -> Iterator[None]:
    """An exclusive kernel lock (flock): released by the kernel on any exit, even kill -9."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise LockedError(f"another recgen job is running (lock held on {path})") from None
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def lock_path(db: str) -> Path:
    return BatchOptions(db=db).output_dir / LOCK_FILE


def ensure_embedded_sample(sample_dir: Path, scale: str, log: Log) -> Path:
    """The synthetic sample used when no data is configured: generated once, then reused."""
    from recgen.sample.generate import generate_sample  # imported late: only the embedded default needs it

    data_dir = sample_dir / "KuaiRec 2.0" / "data"
    if data_dir.is_dir():
        return sample_dir
    log(f"generating the embedded synthetic sample ({scale} scale) in {sample_dir}")
    sample_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".sample-", dir=sample_dir.parent))
    try:
        generate_sample(staging, scale=scale, seed=SEED)
        os.replace(staging, sample_dir)  # a half-written sample is never mistaken for a complete one
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return sample_dir


def is_synthetic(source: Path) -> bool:
    """recgen's generator leaves its ground truth above the data folder: a sample passed by path is still
    synthetic, and the run record says so."""
    return any((folder / GROUND_TRUTH).is_file() for folder in (source, source.parent, source.parent.parent))


class _Stages:
    """Times each stage, logs it, and keeps the figures and the warnings for the runs row."""

    def __init__(self, log: Log):
        self.log = log
        self.seconds: dict[str, float] = {}
        self.warnings: list[str] = []

    def warn(self, message: str) -> None:
        self.warnings.append(message)
        self.log(f"warning: {message}")

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        self.log(f"{name}...")
        started = time.perf_counter()
        yield
        self.seconds[name] = time.perf_counter() - started
        self.log(f"{name} done in {self.seconds[name]:.1f} s")


def run_batch(options: BatchOptions, reporter: Reporter | None = None) -> RunSummary:
    """Run the whole nightly job once; returns the published run's summary or raises (run marked failed)."""
    reporter = reporter or Reporter()
    log = reporter.log
    if options.retrain not in RETRAIN_CHOICES:
        raise ConfigError(f"--retrain must be one of {', '.join(RETRAIN_CHOICES)}, not {options.retrain!r}")
    if options.keep_runs < 1:
        raise ConfigError(f"--keep-runs must be at least 1 (the run being published), not {options.keep_runs}")
    families.family(options.model, options.seed)  # an unknown family fails before anything is written
    engine = get_engine(options.db)
    with job_lock(lock_path(options.db)):
        migrate(engine)
        _fail_abandoned_runs(engine)
        _remove_partial_model_files(options.models_dir, log)
        if options.data_dir is None:
            source = ensure_embedded_sample(Path(options.sample_dir), options.sample_scale, log)
            log(f"no data configured (--data-dir / RECGEN_DATA_DIR): using SYNTHETIC KuaiRec-format data in {source}")
        else:
            source = Path(options.data_dir)
        synthetic = options.data_dir is None or is_synthetic(source)
        run_id = _start_run(engine, str(source), synthetic, options)
        log(f"run {run_id} started")
        stages = _Stages(log)
        started = time.perf_counter()
        try:
            summary = _run_stages(engine, run_id, source, options, stages, reporter)
        except BaseException as exc:  # Ctrl-C and SIGTERM too: the run must not stay 'running'
            _finish_run(engine, run_id, STATUS_FAILED, stages, error=_describe(exc), exit_code=_code(exc))
            if isinstance(exc, RecgenError):  # its one line is the run's summary: status, id, duration, why
                exc.args = (f"run {run_id} failed after {time.perf_counter() - started:.1f} s: {exc}",)
            raise
        summary.seconds = time.perf_counter() - started
        summary.synthetic = synthetic
        return summary


def _run_stages(engine: Engine, run_id: int, source: Path, options: BatchOptions, stages: _Stages, reporter):
    log = reporter.log
    chosen = families.family(options.model, options.seed)
    with stages.stage("ingest"):
        ingested = ingest(engine, source, max_rejected=options.max_rejected, progress=reporter)
        publish.refresh(engine)  # full-text index and planner statistics for Datasette
    with stages.stage("features"):
        catalog = features.load_catalog(engine)
        train_rows = features.load_interactions(engine, catalog)
    with stages.stage("train"):
        keras_model, model_id, trained = _train_or_reload(
            engine, chosen, options, catalog, train_rows, ingested.fingerprint, reporter, stages.warn
        )
        scorer = chosen.scorer(keras_model, catalog)
    n_videos = len(catalog.video_ids)
    popularity = baseline_scorers.exposure_counts(train_rows, n_videos)
    seen = features.seen_matrix_indptr(train_rows, len(catalog.user_ids))
    with stages.stage("recommend"):
        rec_users, rec_videos, rec_scores, sources = _recommend_everyone(
            chosen, scorer, train_rows, catalog, seen, popularity, options.k, reporter
        )
        frame = recommend.recommendation_frame(
            run_id, rec_users, rec_videos, rec_scores, catalog.user_ids, catalog.video_ids, sources
        )
        with engine.begin() as conn:
            insert_frame(conn, recommendations, frame)
    with stages.stage("evaluate"):
        data = evaluate.load_eval_data(engine, catalog)
        others = baseline_scorers.baselines(train_rows, n_videos, options.seed)
        if chosen.name != MODEL_SEED:  # the seed model is the reference every other family must beat
            seed_family = families.family(MODEL_SEED, options.seed)
            seed_model, _, _ = _train_or_reload(
                engine, seed_family, options, catalog, train_rows, ingested.fingerprint, reporter, stages.warn
            )
            others.append(seed_family.scorer(seed_model, catalog, name=MODEL_SEED))
        per_user = evaluate.evaluate_all(data, [scorer, *others], options.k, progress=reporter)
        run_level = {name: evaluate.summary(values, options.k) for name, values in per_user.items()}
        run_level["model"].update(evaluate.beyond_accuracy(rec_videos, popularity, options.k))
        known_users = np.unique(train_rows.users)
        for other in others:
            if isinstance(other, baseline_scorers.VideoScorer | baseline_scorers.RandomScorer):
                _, other_videos, _ = recommend.top_k(other, known_users, *seen, k=options.k)
                run_level[other.name].update(evaluate.beyond_accuracy(other_videos, popularity, options.k))
        with engine.begin() as conn:
            evaluate.write_metrics(conn, run_id, data, per_user["model"], run_level)
    counts = {
        "n_users": int(len(np.unique(rec_users))),
        "n_videos": n_videos,
        "n_train_rows": len(train_rows),
        "n_recommendations": len(frame),
        "n_eval_users": data.n_users,
        "n_rejected_rows": ingested.rejected_total,
        "data_fingerprint": ingested.fingerprint,
        "model_id": model_id,
        "trained": trained,
    }
    log(f"publishing run {run_id}")
    _finish_run(engine, run_id, STATUS_PUBLISHED, stages, exit_code=0, **counts)
    prune(engine, options.keep_runs, options.models_dir, log)
    if not _refresh_report(engine, options, bool(ingested.loaded), log):
        stages.warn("the data-analysis report was not written (see the log)")
        _finish_run(engine, run_id, STATUS_PUBLISHED, stages)
    # The -wal file need not keep a night's worth of pages (a reader holding a snapshot makes this a no-op
    # until the next run).
    checkpoint(engine, truncate=True)
    return RunSummary(
        run_id=run_id,
        status=STATUS_PUBLISHED,
        seconds=0.0,
        synthetic=False,
        trained=trained,
        model_id=model_id,
        metrics=run_level,
        timings=dict(stages.seconds),
    )


def _refresh_report(engine: Engine, options: BatchOptions, data_changed: bool, log: Log) -> bool:
    """The data-analysis report follows the data: rewritten when an input file changed (or it is missing).
    The run is already published, so a failure here is logged and returns False, never raises."""
    if not data_changed and (options.report_dir / REPORT_FILE).is_file():
        return True
    try:
        report.write_report(engine, options.report_dir, progress=log)
    except Exception as exc:  # even a bug in the report must not turn a published night into a failure
        log(f"warning: the data-analysis report was not written: {type(exc).__name__}: {exc}")
        return False
    return True


def prune(engine: Engine, keep_runs: int, models_dir: Path, log: Log) -> None:
    """Retention: only the `keep_runs` newest published runs keep their recommendations and metrics.

    Failed runs' partial outputs go at once. The `runs` rows stay (with `pruned_at` set) as the job's
    history. Model files no kept run uses and that are not the newest of their family and settings are
    deleted too. SQLite reuses the freed pages for the next nights' rows, so the file stops growing.
    """
    with engine.begin() as conn:
        kept = select(runs.c.id).where(runs.c.status == STATUS_PUBLISHED).order_by(runs.c.id.desc()).limit(keep_runs)
        kept_ids = set(conn.execute(kept).scalars())
        stale = [
            row.id
            for row in conn.execute(select(runs.c.id, runs.c.status).where(runs.c.pruned_at.is_(None)))
            if row.id not in kept_ids and row.status != STATUS_RUNNING
        ]
        if stale:
            removed = sum(conn.execute(delete(t).where(t.c.run_id.in_(stale))).rowcount for t in RUN_OUTPUTS)
            conn.execute(update(runs).where(runs.c.id.in_(stale)).values(pruned_at=utc_now()))
            log(f"retention: kept the last {keep_runs} published run(s); removed {removed:,} rows of {len(stale)} more")
        newest = select(func.max(models.c.id)).group_by(models.c.name, models.c.settings_key)
        used = select(runs.c.model_id).where(runs.c.id.in_(kept_ids))
        retired = conn.execute(
            select(models.c.id, models.c.path).where(models.c.id.not_in(newest), models.c.id.not_in(used))
        ).all()
    deleted = [Path(row.path) for row in retired if Path(row.path).is_file()]
    for path in deleted:
        path.unlink(missing_ok=True)
    if deleted:
        log(f"retention: deleted {len(deleted)} model file(s) no kept run uses")


def _remove_partial_model_files(models_dir: Path, log: Log) -> None:
    """A process killed while saving leaves a `.tmp-*` file; it was never recorded, so it is only litter."""
    for partial in models_dir.glob(".tmp-*"):
        partial.unlink(missing_ok=True)
        log(f"removed {partial.name}, a model file a killed run left half-written")


def _recommend_everyone(chosen, scorer, train_rows, catalog, seen, popularity, k, reporter):
    """Top-k for every user of the catalogue, with the path that produced each row.

    Users and videos with training rows are scored by the model (`model`); a user or video without any
    is scored from features by a family that can (`content`); a user without history gets the most
    exposed unseen videos from a family that cannot (`popularity`).
    """
    n_users = len(catalog.user_ids)
    known_user = np.bincount(train_rows.users, minlength=n_users) > 0
    known_video = popularity > 0
    warm = np.flatnonzero(known_user)
    cold = np.flatnonzero(~known_user)
    scoring = reporter.progress("scoring", len(warm), "users")
    parts = [(*recommend.top_k(scorer, warm, *seen, k=k, progress=lambda done, _total: scoring(done)), None)]
    if len(cold):
        cold_scorer = scorer if chosen.content_path else baseline_scorers.popularity_scorer(popularity)
        cold_source = SOURCE_CONTENT if chosen.content_path else SOURCE_POPULARITY
        reporter.log(f"{len(cold):,} users without history: scored by {cold_source}")
        parts.append((*recommend.top_k(cold_scorer, cold, *seen, k=k), cold_source))
    users = np.concatenate([p[0] for p in parts])
    videos = np.concatenate([p[1] for p in parts])
    scores = np.concatenate([p[2] for p in parts])
    sources = np.where(known_video[videos], SOURCE_MODEL, SOURCE_CONTENT).astype(object)
    for part_users, _, _, source in parts:
        if source is not None:
            sources[np.isin(users, part_users)] = source
    order = np.argsort(users, kind="stable")
    return users[order], videos[order], scores[order], sources[order]


def _train_or_reload(engine, chosen, options, catalog, train_rows, fingerprint, reporter: Reporter, warn: Log):
    """Reload the newest intact model of this family, settings and data (`--retrain auto`), else train."""
    log = reporter.log
    key = chosen.key()
    if options.retrain != "always":
        found = _reusable_model(engine, chosen.name, key, None if options.retrain == "never" else fingerprint, warn)
        if found is not None:
            model_id, keras_model = found
            log(f"reloaded {chosen.name} model {model_id} (data and settings unchanged)")
            return keras_model, model_id, False
        if options.retrain == "never":
            raise MissingInputError(f"--retrain never: no usable saved {chosen.name} model; run with --retrain auto")
    keras_model = chosen.build(engine, catalog, train_rows)
    log(f"training the {chosen.name} model on {len(train_rows):,} interactions")
    report = chosen.train(keras_model, train_rows, reporter)
    path, digest = model.save(keras_model, Path(options.models_dir))
    with engine.begin() as conn:
        model_id = conn.execute(
            models.insert().values(
                name=chosen.name,
                path=str(path),
                sha256=digest,
                architecture=model.architecture(keras_model),
                params=json.dumps(chosen.params()),
                n_parameters=int(keras_model.count_params()),
                data_fingerprint=fingerprint,
                settings_key=key,
                val_loss=report.val_loss,
                epochs_trained=report.epochs_trained,
                train_seconds=report.seconds,
                train_rows=report.rows,
                created_at=utc_now(),
            )
        ).inserted_primary_key[0]
    return keras_model, int(model_id), True


def _reusable_model(engine: Engine, name: str, key: str, fingerprint: str | None, warn: Log):
    """The newest saved model with these settings (and data), if its file is intact; None otherwise."""
    query = select(models.c.id, models.c.path, models.c.sha256).where(
        models.c.name == name, models.c.settings_key == key
    )
    if fingerprint is not None:
        query = query.where(models.c.data_fingerprint == fingerprint)
    with engine.connect() as conn:
        row = conn.execute(query.order_by(models.c.id.desc()).limit(1)).first()
    if row is None:
        return None
    path = Path(row.path)
    if not path.is_file() or model.file_sha256(path) != row.sha256:
        warn(f"saved {name} model {row.id} at {path} is missing or changed (sha256 mismatch); retrained")
        return None
    try:
        return int(row.id), model.load(path)
    except Exception as exc:  # a corrupt file must mean retraining, never a crash
        warn(f"saved {name} model {row.id} at {path} cannot be loaded ({type(exc).__name__}); retrained")
        return None


def _start_run(engine: Engine, source: str, synthetic: bool, options: BatchOptions) -> int:
    with engine.begin() as conn:
        return int(
            conn.execute(
                runs.insert().values(
                    started_at=utc_now(),
                    status=STATUS_RUNNING,
                    data_source=source,
                    synthetic=synthetic,
                    model_name=options.model,
                    k=options.k,
                )
            ).inserted_primary_key[0]
        )


def _finish_run(engine: Engine, run_id: int, status: str, stages: _Stages, **values) -> None:
    timing_columns = {f"{stage}_seconds": value for stage, value in stages.seconds.items()}
    with engine.begin() as conn:
        conn.execute(
            update(runs)
            .where(runs.c.id == run_id)
            .values(
                status=status,
                finished_at=utc_now(),
                warnings="\n".join(stages.warnings) or None,
                **timing_columns,
                **values,
            )
        )


def _fail_abandoned_runs(engine: Engine) -> None:
    """Runs still 'running' while we hold the lock died without cleaning up (kill -9, power loss)."""
    with engine.begin() as conn:
        conn.execute(
            update(runs)
            .where(runs.c.status == STATUS_RUNNING)
            .values(status=STATUS_FAILED, finished_at=utc_now(), error="abandoned: the process died mid-run")
        )


def _describe(exc: BaseException) -> str:
    if isinstance(exc, KeyboardInterrupt):
        return "interrupted (Ctrl-C)"
    if isinstance(exc, SystemExit):
        return f"interrupted (exit {exc.code})"
    return f"{type(exc).__name__}: {exc}"


def _code(exc: BaseException) -> int:
    if isinstance(exc, RecgenError):
        return exc.exit_code
    if isinstance(exc, KeyboardInterrupt):
        return 130
    if isinstance(exc, SystemExit) and isinstance(exc.code, int):
        return exc.code
    return EXIT_INTERNAL
