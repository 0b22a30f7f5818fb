"""The `recgen` command: thin click commands over the library functions.

Expected failures print one line and exit with the code documented in recgen.errors (and the README).
"""

from __future__ import annotations

import functools
import gc
import json
import os
import signal
import sys
import traceback
from pathlib import Path

import click

from recgen.constants import (
    DEFAULT_DB_PATH,
    DEFAULT_MODEL,
    EMBEDDED_SAMPLE_SCALE,
    ENGINE_CHOICES,
    ENGINE_LOCAL,
    ENV_PREFIX,
    FAISS_EXTRA,
    KEEP_RUNS,
    MAX_REJECTED,
    MODEL_CHOICES,
    RAY_EXTRA,
    RAY_RETRIES,
    REPORT_SUBDIR,
    RETRAIN_AUTO,
    RETRAIN_CHOICES,
    RUN_MODEL,
    SAMPLE_SCALES,
    SCORER_CHOICES,
    SCORER_NUMPY,
    SEED,
    SHARD_USERS,
    TOP_K,
)
from recgen.errors import (
    EXIT_CANT_CREATE,
    EXIT_INTERNAL,
    EXIT_INTERRUPTED,
    EXIT_TERMINATED,
    EXIT_UNAVAILABLE,
    EXIT_USAGE,
    RecgenError,
    one_line,
)
from recgen.progress import LOG_FORMATS, Reporter


def env(name: str) -> str:
    """The environment variable an option is read from: RECGEN_<NAME>."""
    return f"{ENV_PREFIX}_{name}"


MAX_REJECTED_OPTION = click.option(
    "--max-rejected",
    envvar=env("MAX_REJECTED"),
    show_envvar=True,
    type=click.FloatRange(0, 1),
    default=MAX_REJECTED,
    show_default=True,
    help="Largest share of an interaction file's rows that may be set aside in rejected_rows (bad values, "
    "unknown ids, duplicate or leaked pairs) before the load is refused.",
)

DB_OPTION = click.option(
    "--db",
    envvar=env("DB"),
    show_envvar=True,
    default=str(DEFAULT_DB_PATH),
    show_default=True,
    help="SQLite file or SQLAlchemy URL.",
)


def _reporter() -> Reporter:
    """The reporter set up by the group's --quiet / --log-format options."""
    context = click.get_current_context(silent=True)
    found = context.find_object(Reporter) if context else None
    return found or Reporter()


def _log(message: str) -> None:
    _reporter().log(message)


def _expected_failures(func):
    """Turn RecgenError into one clean line and its exit code; SIGTERM into a clean stop (exit 143)."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        signal.signal(signal.SIGTERM, _raise_on_sigterm)
        try:
            return func(*args, **kwargs)
        except RecgenError as exc:
            click.echo(f"Error: {exc}", err=True)
            sys.exit(exc.exit_code)
        except KeyboardInterrupt:
            click.echo("Interrupted.", err=True)
            _leave_now(EXIT_INTERRUPTED)
        except SystemExit as exc:
            if exc.code == EXIT_TERMINATED:
                _leave_now(EXIT_TERMINATED)
            raise

    return wrapper


def _leave_now(code: int) -> None:
    """Exit at once with `code` (the run is already marked failed): tearing down the interpreter while
    TensorFlow's worker threads are still busy with the stopped step can abort the process on its way out."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def _raise_on_sigterm(signum, frame):
    raise SystemExit(EXIT_TERMINATED)


# SQLite's messages for a database file recgen cannot use (as opposed to a bug in a statement).
_STORAGE_ERRORS = (
    "file is not a database",
    "unable to open database file",
    "attempt to write a readonly database",
    "database or disk is full",
    "disk i/o error",
    "database disk image is malformed",
)


def _is_storage_error(exc: Exception) -> bool:
    import sqlite3

    from sqlalchemy.exc import DBAPIError

    cause = exc.orig if isinstance(exc, DBAPIError) else exc
    return isinstance(cause, sqlite3.DatabaseError) and any(text in str(cause).lower() for text in _STORAGE_ERRORS)


def _is_server_unavailable(exc: Exception) -> bool:
    from recgen.store.engine import is_unavailable

    return is_unavailable(exc)


class _Group(click.Group):
    """Exit codes from the documented table: usage errors 64 (click's default is 2), bugs 70."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        try:
            code = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except click.UsageError as exc:
            exc.show()
            sys.exit(EXIT_USAGE)
        except click.Abort:
            click.echo("Interrupted.", err=True)
            sys.exit(EXIT_INTERRUPTED)
        except click.ClickException as exc:
            exc.show()
            sys.exit(exc.exit_code)
        except Exception as exc:
            if _is_server_unavailable(exc):  # the database server, not recgen, is the problem: one line, 69
                from recgen.store.engine import server_message

                click.echo(f"Error: the database server is unavailable: {server_message(exc)}", err=True)
                sys.exit(EXIT_UNAVAILABLE)
            if _is_storage_error(exc):  # the database file, not recgen, is the problem: one line, 73
                click.echo(f"Error: cannot use the database: {one_line(getattr(exc, 'orig', exc))}", err=True)
                sys.exit(EXIT_CANT_CREATE)
            traceback.print_exc()
            click.echo("Internal error (a bug in recgen): please report it with the traceback above.", err=True)
            sys.exit(EXIT_INTERNAL)
        sys.exit(code if isinstance(code, int) else 0)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="recgen")
@click.option(
    "-q", "--quiet", is_flag=True, envvar=env("QUIET"), show_envvar=True, help="Only errors and the final summary."
)
@click.option(
    "--log-format",
    type=click.Choice(LOG_FORMATS),
    default="text",
    envvar=env("LOG_FORMAT"),
    show_envvar=True,
    show_default=True,
    help="Progress lines on stderr as text (live bars on a terminal) or JSON lines.",
)
@click.pass_context
def cli(ctx, quiet, log_format) -> None:
    """recgen: nightly top-50 recommendations for KuaiRec-style data, in SQLite, published with Datasette.

    Example:

        recgen run-batch && datasette output/recs.db
    """
    ctx.obj = Reporter(log_format=log_format, quiet=quiet)


@cli.command("run-batch")
@DB_OPTION
@click.option(
    "--data-dir",
    envvar=env("DATA_DIR"),
    show_envvar=True,
    type=click.Path(path_type=Path),
    help="KuaiRec folder or KuaiRec.zip. Without it, a synthetic sample is generated once under output/ and used.",
)
@click.option(
    "--retrain",
    envvar=env("RETRAIN"),
    show_envvar=True,
    type=click.Choice(RETRAIN_CHOICES),
    default=RETRAIN_AUTO,
    show_default=True,
    help="auto: reload the saved model when the data and settings are unchanged.",
)
@click.option(
    "--model",
    "model_name",
    envvar=env("MODEL"),
    show_envvar=True,
    type=click.Choice(MODEL_CHOICES),
    default=DEFAULT_MODEL,
    show_default=True,
    help="hybrid: recgen's two-tower model over ids, content and user features; seed: the seed notebook's "
    "network (always evaluated as a baseline).",
)
@click.option("--k", type=click.IntRange(1, 1000), default=TOP_K, show_default=True, help="List length.")
@click.option("--seed", type=int, default=SEED, show_default=True, help="Random seed for training and baselines.")
@click.option(
    "--sample-scale",
    envvar=env("SAMPLE_SCALE"),
    show_envvar=True,
    type=click.Choice(SAMPLE_SCALES),
    default=EMBEDDED_SAMPLE_SCALE,
    show_default=True,
    help="Size of the synthetic sample generated when no data is configured.",
)
@click.option(
    "--keep-runs",
    envvar=env("KEEP_RUNS"),
    show_envvar=True,
    type=click.IntRange(1),
    default=KEEP_RUNS,
    show_default=True,
    help="Published runs whose recommendations and metrics are kept; older ones are removed by the same job.",
)
@MAX_REJECTED_OPTION
@click.option(
    "--artifacts",
    envvar=env("ARTIFACTS"),
    show_envvar=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder for the saved models, one every host running the job can read (for a shared database)  "
    "[default: models/ beside a SQLite file, else output/models].",
)
@click.option(
    "--engine",
    envvar=env("ENGINE"),
    show_envvar=True,
    type=click.Choice(ENGINE_CHOICES),
    default=ENGINE_LOCAL,
    show_default=True,
    help="Where tower inference, the refit, the residual factors and scoring run: in this process, or on a Ray "
    f"cluster ({RAY_EXTRA}; the towers still train here).",
)
@click.option(
    "--ray-address",
    envvar="RAY_ADDRESS",
    show_envvar=True,
    help="The Ray cluster to run on, e.g. ray://head:10001 or head:6379  [default: a new one on this machine].",
)
@click.option(
    "--ray-retries",
    envvar=env("RAY_RETRIES"),
    show_envvar=True,
    type=click.IntRange(0),
    default=RAY_RETRIES,
    show_default=True,
    help="Times Ray runs a shard again when its worker dies (killed, out of memory, node lost) before the run fails.",
)
@click.option(
    "--workers",
    envvar=env("WORKERS"),
    show_envvar=True,
    type=click.IntRange(1),
    help="Shards run at a time on the engine  [default: the Ray cluster's CPUs; local: 1].",
)
@click.option(
    "--shard-users",
    envvar=env("SHARD_USERS"),
    show_envvar=True,
    type=click.IntRange(1),
    default=SHARD_USERS,
    show_default=True,
    help="Users per shard of the per-user stages (every engine cuts the same shards, so results match).",
)
@click.option(
    "--scorer",
    envvar=env("SCORER"),
    show_envvar=True,
    type=click.Choice(SCORER_CHOICES),
    default=SCORER_NUMPY,
    show_default=True,
    help="How every video is scored for every user: numpy or flat (FAISS, faster on large catalogues) are exact; "
    f"ivf (FAISS) is approximate. flat and ivf need {FAISS_EXTRA}.",
)
@_expected_failures
def run_batch(
    db, data_dir, retrain, model_name, k, seed, sample_scale, keep_runs, max_rejected, artifacts, engine,
    ray_address, ray_retries, workers, shard_users, scorer,
) -> None:  # fmt: skip
    """Run the nightly job: ingest, features, train or reload, recommend, evaluate, publish.

    Example:

        recgen run-batch --data-dir "/data/KuaiRec 2.0"

        recgen run-batch --engine ray --ray-address head-node:6379 --artifacts /shared/recgen/models

    cron: 0 3 * * * cd /srv/recgen && RECGEN_DATA_DIR=/data/KuaiRec.zip recgen run-batch
    """
    from recgen.batch import BatchOptions, run_batch

    options = BatchOptions(
        db=db,
        data_dir=str(data_dir) if data_dir else None,
        retrain=retrain,
        model=model_name,
        k=k,
        seed=seed,
        sample_scale=sample_scale,
        keep_runs=keep_runs,
        max_rejected=max_rejected,
        artifacts=str(artifacts) if artifacts else None,
        engine=engine,
        ray_address=ray_address,
        ray_retries=ray_retries,
        workers=workers,
        shard_users=shard_users,
        scorer=scorer,
    )
    reporter = _reporter()
    summary = run_batch(options, reporter)
    model_metrics = summary.metrics.get(RUN_MODEL, {})
    headline = {f"{name}@{k}": model_metrics.get(f"{name}@{k}") for name in ("ndcg", "hit_ratio")}
    if reporter.log_format == "json":  # the final line, like every other, is one JSON object
        click.echo(
            json.dumps(
                {
                    "run_id": summary.run_id,
                    "status": summary.status,
                    "seconds": round(summary.seconds, 1),
                    "model_id": summary.model_id,
                    "trained": summary.trained,
                    "synthetic": summary.synthetic,
                    **headline,
                }
            )
        )
        return
    kind = "synthetic" if summary.synthetic else "real"
    click.echo(
        f"run {summary.run_id} {summary.status} in {summary.seconds:.1f} s "
        f"({'trained' if summary.trained else 'reloaded'} model {summary.model_id}, {kind} data): "
        + ", ".join(f"{name} {value:.4f}" for name, value in headline.items() if value is not None)
    )


@cli.command()
@DB_OPTION
@click.option(
    "--data-dir",
    envvar=env("DATA_DIR"),
    show_envvar=True,
    type=click.Path(path_type=Path),
    required=True,
    help="KuaiRec folder or KuaiRec.zip.",
)
@click.option("--force", is_flag=True, help="Reload every file even if unchanged.")
@MAX_REJECTED_OPTION
@_expected_failures
def ingest(db, data_dir, force, max_rejected) -> None:
    """Load the KuaiRec CSVs into the database (unchanged files are skipped).

    Example:

        recgen ingest --data-dir KuaiRec.zip
    """
    from recgen.ingest import ingest as run_ingest
    from recgen.store.engine import get_engine
    from recgen.store.lock import job_lock

    with job_lock(db):
        result = run_ingest(get_engine(db), data_dir, force=force, max_rejected=max_rejected, progress=_log)
    click.echo(
        f"loaded {len(result.loaded)} file(s), skipped {len(result.skipped)} unchanged"
        + (f", dropped {result.duplicates_dropped:,} duplicate rows" if result.duplicates_dropped else "")
        + "; "
        + ", ".join(f"{table} {rows:,}" for table, rows in result.rows.items())
    )


@cli.command()
@click.argument("out_dir", type=click.Path(path_type=Path))
@click.option(
    "--scale",
    type=click.Choice(SAMPLE_SCALES),
    default="tiny",
    show_default=True,
    help="Sample size: the real dataset's (full) or smaller ones at its densities.",
)
@click.option(
    "--users",
    type=click.IntRange(min=1),
    help="Custom size, with --videos: users in big_matrix, each with as many rows as a KuaiRec user.",
)
@click.option("--videos", type=click.IntRange(min=1), help="Custom size, with --users: videos in the catalogue.")
@click.option(
    "--small-users",
    type=click.IntRange(min=1),
    help="Users of the fully observed small_matrix (custom sizes)  [default: 1,411, at most 19.7% of --users]",
)
@click.option(
    "--small-videos",
    type=click.IntRange(min=1),
    help="Videos of the fully observed small_matrix (custom sizes)  [default: 3,327, at most 31% of --videos]",
)
@click.option("--seed", type=int, default=SEED, show_default=True, help="Generator seed.")
@click.pass_context
@_expected_failures
def sample(ctx, out_dir, scale, users, videos, small_users, small_videos, seed) -> None:
    """Write a synthetic KuaiRec 2.0 dataset (all seven CSVs, real format) with a planted ground truth.

    A named --scale, or any size with --users and --videos (rows per user as in KuaiRec). big_matrix is
    written in chunks: memory does not grow with users x videos (docs/synthetic.md).

    Example:

        recgen sample /tmp/kuairec --scale small --seed 7

        recgen sample /tmp/kuairec-200k --users 200000 --videos 100000
    """
    from recgen.errors import ConfigError
    from recgen.sample import custom_scale, generate_sample

    if users is None and videos is None:
        if small_users is not None or small_videos is not None:
            raise click.UsageError("--small-users and --small-videos need --users and --videos")
        size, what = scale, scale
    elif ctx.get_parameter_source("scale") is not click.core.ParameterSource.DEFAULT:
        raise click.UsageError("--scale and --users/--videos are mutually exclusive: choose one")
    elif users is None or videos is None:
        raise click.UsageError("--users and --videos go together: give both")
    else:
        try:
            size = custom_scale(users, videos, small_users, small_videos)
        except ConfigError as exc:
            raise click.UsageError(str(exc)) from None
        what = f"{users:,} x {videos:,}"
    data_dir = generate_sample(out_dir, scale=size, seed=seed, progress=_reporter())
    click.echo(f"wrote a {what} synthetic sample to {data_dir}")


@cli.command()
@DB_OPTION
@click.option(
    "--out",
    "out_dir",
    type=click.Path(path_type=Path),
    help="Report folder  [default: report/ beside the database, where Datasette's plugin serves it]",
)
@_expected_failures
def report(db, out_dir) -> None:
    """Write the data-analysis report (index.html + PNG figures) and the data_profile table.

    Example:

        recgen report --db output/recs.db
    """
    from recgen.report import write_report
    from recgen.store.engine import existing_engine, output_folder
    from recgen.store.lock import job_lock

    folder = out_dir or output_folder(db) / REPORT_SUBDIR
    engine = existing_engine(db)
    with job_lock(db):  # it rewrites data_profile: never while a run writes
        written = write_report(engine, folder, progress=_log)
    click.echo(f"wrote {written}")


@cli.command("evaluate")
@DB_OPTION
@click.option("--run", "run_id", type=int, help="Run id (default: the latest published run).")
@_expected_failures
def evaluate_command(db, run_id) -> None:
    """Print a run's metrics for the model next to the baselines.

    Example:

        recgen evaluate --run 12
    """
    from recgen.errors import MissingInputError
    from recgen.evaluation import metrics_table
    from recgen.store.engine import existing_engine

    found, table = metrics_table(existing_engine(db), run_id)
    if table.empty:
        raise MissingInputError(f"no metrics for {'run ' + str(run_id) if run_id else 'any published run'} in {db}")
    click.echo(f"run {found}")
    click.echo(table.to_string(float_format=lambda v: f"{v:.4f}", na_rep="-"))


@cli.command("export-sqlite")
@DB_OPTION
@click.argument("out", type=click.Path(dir_okay=False, path_type=Path))
@_expected_failures
def export_sqlite_command(db, out) -> None:
    """Write the latest published run and its inputs into a SQLite file that `datasette OUT` serves.

    For a PostgreSQL database, which Datasette cannot open: the same metadata, pages and canned queries.

    Example:

        recgen export-sqlite --db postgresql://recgen@db-host/recgen /srv/datasette/recs.db
    """
    from recgen.store.export import export_sqlite

    export = export_sqlite(db, out, _log)
    click.echo(f"wrote run {export.run_id} to {export.path} ({sum(export.rows.values()):,} rows): datasette {out}")


@cli.command()
@click.option(
    "--dest",
    envvar=env("DOWNLOAD_DEST"),
    show_envvar=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder to write KuaiRec.zip to (created if needed)  [default: data/].",
)
@click.option(
    "--url",
    "urls",
    multiple=True,
    envvar=env("DOWNLOAD_URL"),
    show_envvar=True,
    help="Source to try instead of the official ones (Zenodo, the authors' server, a Google Drive mirror); "
    "repeat for several, tried in order. From the environment: space-separated.",
)
@click.option(
    "--size",
    type=click.IntRange(1),
    help="Expected size in bytes, for a mirror or test server of another file  [default: the official archive's].",
)
@click.option(
    "--md5",
    help="Expected MD5 (32 hex digits), for a mirror or test server of another file  [default: the official "
    "archive's].",
)
@_expected_failures
def download(dest, urls, size, md5) -> None:
    """Download the real KuaiRec 2.0 archive (KuaiRec.zip, 432 MB) and verify its size and MD5.

    An interrupted download is kept in KuaiRec.zip.part and resumed by the next run; KuaiRec.zip appears
    only once verified, and the last line printed is the run-batch command that reads it. Exit codes: 65
    the file is wrong (another size, or a bad MD5: the .part is removed), 66 no source delivered it (none
    reachable, or each failed), 75 another download is writing the same file.

    Example:

        recgen download --dest /data
    """
    from recgen.ingest.download import DEFAULT_DEST, OFFICIAL_MD5, OFFICIAL_SIZE, download_kuairec

    result = download_kuairec(
        dest or DEFAULT_DEST,
        urls=list(urls) or None,
        size=size or OFFICIAL_SIZE,
        md5=md5 or OFFICIAL_MD5,
        progress=_reporter(),
    )
    if result.already_there:
        click.echo(f"{result.path} is already there, size and MD5 verified: nothing downloaded")
    else:
        origin = f"from {result.source}" if result.source else "from the complete .part"
        click.echo(f"saved {result.path} ({result.size:,} bytes, size and MD5 verified) {origin}")
    click.echo(f"next: {result.run_batch_command()}")


def main() -> None:
    """The `recgen` command: `cli`, then the exit, without the interpreter's final garbage collection."""
    try:
        cli(prog_name="recgen")
    finally:
        # That collection walks every object TensorFlow made, for seconds, and frees nothing the exit does not.
        gc.freeze()
