"""The nightly job: lock, run record, ingest -> features -> train/reload -> recommend -> evaluate -> publish.

This module only orchestrates: it calls each stage and records it in the run's `runs` row. Everything a run
writes carries its run id; the `latest_*` views show a run only once its last transaction marks it
published, so readers never see half a run and a failed night leaves the previous results in place.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import Engine

from recgen import features, recommend
from recgen.artifacts import remove_partial_files
from recgen.constants import (
    DEFAULT_DB_PATH,
    DEFAULT_MODEL,
    EMBEDDED_SAMPLE_SCALE,
    ENGINE_CHOICES,
    ENGINE_LOCAL,
    ENGINE_RAY,
    KEEP_RUNS,
    MAX_REJECTED,
    MODEL_CHOICES,
    MODEL_HYBRID,
    MODEL_SEED,
    MODELS_SUBDIR,
    RAY_RETRIES,
    REPORT_SUBDIR,
    RETRAIN_AUTO,
    RETRAIN_CHOICES,
    SAMPLE_SUBDIR,
    SCORER_CHOICES,
    SCORER_NUMPY,
    SEED,
    SHARD_USERS,
    STATUS_PUBLISHED,
    TOP_K,
)
from recgen.engines import Placement, open_executor
from recgen.engines.ray import import_ray
from recgen.errors import (
    EXIT_INTERNAL,
    EXIT_INTERRUPTED,
    EXIT_UNAVAILABLE,
    ConfigError,
    RecgenError,
    UnavailableError,
    one_line,
)
from recgen.evaluation import evaluate, evaluation_key, reuse_metrics, write_metrics
from recgen.ingest import ingest
from recgen.progress import Reporter
from recgen.report import start_report
from recgen.sample import embedded_sample, is_synthetic
from recgen.scoring import import_faiss
from recgen.store import fts, runs
from recgen.store.engine import checkpoint, get_engine, is_unavailable, migrate, output_folder, server_message
from recgen.store.lock import HeldLock, job_lock


@dataclass
class BatchOptions:
    db: str = str(DEFAULT_DB_PATH)
    data_dir: str | None = None
    retrain: str = RETRAIN_AUTO
    model: str = DEFAULT_MODEL
    k: int = TOP_K
    seed: int = SEED
    sample_scale: str = EMBEDDED_SAMPLE_SCALE
    keep_runs: int = KEEP_RUNS
    max_rejected: float = MAX_REJECTED
    artifacts: str | None = None  # where model files go: a folder every host can read, for a shared database
    engine: str = ENGINE_LOCAL  # where the per-user stages run (recgen.engines)
    ray_address: str | None = None
    workers: int | None = None  # the engine's workers (Ray: default, the cluster's CPUs)
    ray_retries: int = RAY_RETRIES
    shard_users: int = SHARD_USERS
    scorer: str = SCORER_NUMPY

    @property
    def output_dir(self) -> Path:
        """The database's folder for SQLite (models, sample and lock live beside it), else ./output."""
        return output_folder(self.db)

    @property
    def models_dir(self) -> Path:
        return Path(self.artifacts) if self.artifacts else self.output_dir / MODELS_SUBDIR

    @property
    def sample_dir(self) -> Path:
        return self.output_dir / SAMPLE_SUBDIR

    @property
    def report_dir(self) -> Path:
        return self.output_dir / REPORT_SUBDIR

    def check(self) -> None:
        """Refuse options that cannot work before anything is written."""
        if self.retrain not in RETRAIN_CHOICES:
            raise ConfigError(f"--retrain must be one of {', '.join(RETRAIN_CHOICES)}, not {self.retrain!r}")
        if self.keep_runs < 1:
            raise ConfigError(f"--keep-runs must be at least 1 (the run being published), not {self.keep_runs}")
        if self.engine not in ENGINE_CHOICES:
            raise ConfigError(f"--engine must be one of {', '.join(ENGINE_CHOICES)}, not {self.engine!r}")
        if self.scorer not in SCORER_CHOICES:
            raise ConfigError(f"--scorer must be one of {', '.join(SCORER_CHOICES)}, not {self.scorer!r}")
        if self.scorer != SCORER_NUMPY and self.model != MODEL_HYBRID:
            raise ConfigError(f"--scorer {self.scorer} ranks tower vectors: it needs --model {MODEL_HYBRID}")
        if self.scorer != SCORER_NUMPY:
            import_faiss()  # missing: one line naming the extra, before anything is written
        if self.engine == ENGINE_RAY:
            import_ray()
        if self.model not in MODEL_CHOICES:
            raise ConfigError(f"--model must be one of {', '.join(MODEL_CHOICES)}, not {self.model!r}")


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


def run_batch(options: BatchOptions, reporter: Reporter | None = None) -> RunSummary:
    """Run the whole nightly job once; returns the published run's summary or raises (run marked failed)."""
    reporter = reporter or Reporter()
    log = reporter.log
    options.check()
    engine = get_engine(options.db)
    with job_lock(options.db) as lock, _placement(options, log) as placement:
        migrate(engine)
        runs.fail_abandoned_runs(engine)
        remove_partial_files(options.models_dir, log)
        if options.data_dir is None:
            source = embedded_sample(options.sample_dir, options.sample_scale, log)
            log(f"no data configured (--data-dir / RECGEN_DATA_DIR): using SYNTHETIC KuaiRec-format data in {source}")
        else:
            source = Path(options.data_dir)
        synthetic = options.data_dir is None or is_synthetic(source)
        run = runs.RunRecord(
            engine, log, data_source=str(source), synthetic=synthetic, model_name=options.model, k=options.k
        )
        log(f"run {run.id} started")
        started = time.perf_counter()
        try:
            summary = _run_stages(engine, run, source, options, reporter, lock, placement)
        except BaseException as exc:  # Ctrl-C and SIGTERM too: the run must not stay 'running'
            _record_failure(run, exc, log)
            why = f"run {run.id} failed after {time.perf_counter() - started:.1f} s"
            if is_unavailable(exc):
                raise UnavailableError(f"{why}: the database server is unavailable: {server_message(exc)}") from exc
            if isinstance(exc, RecgenError):  # its one line is the run's summary: status, id, duration, why
                exc.args = (f"{why}: {exc}",)
            raise
        summary.seconds = time.perf_counter() - started
        summary.synthetic = synthetic
        return summary


@contextmanager
def _placement(options: BatchOptions, log) -> Iterator[Placement]:
    """The run's engine, connected for the run's duration (a Ray cluster's workers write to --artifacts)."""
    executor = open_executor(options.engine, options.ray_address, options.workers, log, options.ray_retries)
    try:
        yield Placement(
            executor,
            options.shard_users,
            options.scorer,
            artifacts=options.models_dir,
            tables_outside=options.engine == ENGINE_RAY,
        )
    finally:
        executor.close()


def _run_stages(
    engine: Engine,
    run: runs.RunRecord,
    source: Path,
    options: BatchOptions,
    reporter: Reporter,
    lock: HeldLock,
    placement: Placement,
):
    with run.stage("ingest"):
        ingested = ingest(engine, source, max_rejected=options.max_rejected, progress=reporter)
        fts.refresh(engine)  # full-text index and planner statistics for Datasette
    # TensorFlow and Keras (~10 s of one core) load only now: a run refused or failed before needs neither. And
    # before the report's thread starts, which imports some of the same modules.
    from recgen.models import family

    chosen = family(options.model, options.seed)
    report_written = start_report(engine, options.report_dir, bool(ingested.loaded), reporter.log)
    with run.stage("features"):
        inputs = features.load_inputs(engine)
    with run.stage("train"):
        model = _train_or_reload(engine, chosen, inputs, ingested.model_fingerprint, options, reporter, run, placement)
        scorer = chosen.scorer(
            model.keras_model, inputs.catalog, placement=placement, model_file=model.file, user_tables=model.user_tables
        )
    with run.stage("recommend"):
        with engine.begin() as conn:
            lists = recommend.recommend(conn, run.id, scorer, chosen.content_path, inputs, options.k, reporter)
    with run.stage("evaluate"):
        others, model_ids = [], [model.model_id]
        if chosen.name != MODEL_SEED:  # the seed model is the reference every other family must beat
            seed_family = family(MODEL_SEED, options.seed)
            seed_model = _train_or_reload(
                engine, seed_family, inputs, ingested.model_fingerprint, options, reporter, run, placement
            )
            others.append(seed_family.scorer(seed_model.keras_model, inputs.catalog, name=MODEL_SEED))
            model_ids.append(seed_model.model_id)
        key = evaluation_key(
            ingested.fingerprint, model_ids, options.k, options.seed, scorer=options.scorer, engine=options.engine
        )
        with engine.begin() as conn:
            stored = reuse_metrics(conn, run.id, key)
        if stored is None:
            evaluation = evaluate(
                engine, inputs, scorer, lists.videos, options.k, options.seed, others=others, progress=reporter
            )
            with engine.begin() as conn:
                stored = write_metrics(conn, run.id, evaluation)
        else:
            reporter.log(f"metrics copied from run {stored.copied_from}: the same models, data and settings")
    reporter.log(f"publishing run {run.id}")
    lock.verify()  # a job whose lock was lost (its database session ended) must not publish
    run.publish(
        n_users=lists.n_users,
        n_videos=len(inputs.catalog.video_ids),
        n_train_rows=len(inputs.train),
        n_recommendations=len(lists),
        n_eval_users=stored.n_users,
        n_rejected_rows=ingested.rejected_total,
        data_fingerprint=ingested.fingerprint,
        model_id=model.model_id,
        trained=model.trained,
        evaluation_key=key,
    )
    runs.prune(engine, options.keep_runs, reporter.log)
    if not report_written():
        run.warn("the data-analysis report was not written (see the log)")
        run.finish(STATUS_PUBLISHED)
    # The -wal file need not keep a night's worth of pages (a reader holding a snapshot makes this a no-op
    # until the next run).
    checkpoint(engine, truncate=True)
    return RunSummary(
        run_id=run.id,
        status=STATUS_PUBLISHED,
        seconds=0.0,
        synthetic=False,
        trained=model.trained,
        model_id=model.model_id,
        metrics=stored.run_level,
        timings=dict(run.seconds),
    )


def _train_or_reload(
    engine, chosen, inputs, fingerprint, options: BatchOptions, reporter, run: runs.RunRecord, placement: Placement
):
    from recgen.models.saved import train_or_reload  # with TensorFlow: see _run_stages

    return train_or_reload(
        engine,
        chosen,
        inputs.catalog,
        inputs.train,
        fingerprint,
        options.retrain,
        options.models_dir,
        reporter,
        run.warn,
        placement,
    )


def _record_failure(run: runs.RunRecord, exc: BaseException, log) -> None:
    """Mark the run failed; if the database cannot be reached any more, it stays 'running' and the next
    start marks it abandoned."""
    try:
        run.fail(_describe(exc), _exit_code(exc))
    except Exception as unrecorded:
        if not is_unavailable(unrecorded):
            raise
        log(f"the run could not be marked failed ({one_line(unrecorded)}): the next run will mark it abandoned")


def _describe(exc: BaseException) -> str:
    if isinstance(exc, KeyboardInterrupt):
        return "interrupted (Ctrl-C)"
    if isinstance(exc, SystemExit):
        return f"interrupted (exit {exc.code})"
    return f"{type(exc).__name__}: {exc}"


def _exit_code(exc: BaseException) -> int:
    if isinstance(exc, RecgenError):
        return exc.exit_code
    if is_unavailable(exc):
        return EXIT_UNAVAILABLE
    if isinstance(exc, KeyboardInterrupt):
        return EXIT_INTERRUPTED
    if isinstance(exc, SystemExit) and isinstance(exc.code, int):
        return exc.code
    return EXIT_INTERNAL
