"""How the per-user stages scale, measured in one invocation: each stage with the local engine, Ray with one
worker and Ray with two, at growing synthetic sizes; what two workers can gain on this machine at all (the
scoring arithmetic in two plain processes against one); Ray's fixed overhead; the scorers side by side with
the approximate one's recall; and a projection to 10^8 users x 10^7 videos.

    python benchmarks/scale.py                              # KuaiRec's size (full) and 10^5 users x 10^5 videos
    python benchmarks/scale.py --sizes full u20k-v50k --out /tmp/recgen-scale

A size is a sample scale (`full`: KuaiRec's 7,176 users x 10,728 videos; `small`, `tiny`) or `uNk-vMk`
(`recgen sample --users N000 --videos M000`: rows per user as in KuaiRec). For each size, made once and kept
under --out: the sample, a database of its catalogue files, its training rows read straight from the CSV, and
a default model whose towers are trained (`--epochs`, on `--fit-rows` rows drawn at random; the refit and the
factors are what is measured here).
Then, for each engine (one Ray cluster of this machine's cores, used with one worker and with two):

- tower inference: every user through the user tower, a shard at a time on workers that load the .keras
  file (users/s);
- refit: every user's closed-form regression, `solves.refit_shard` (training rows/s);
- factors, user step and video step: one alternating-least-squares half-sweep each (rows/s);
- scoring: the top-50 unseen videos of every user, against every video (pairs/s), the user tower included;
  with the numpy scorer (the default) and with FAISS's exact one (`--scorer flat`);

each with the peak resident memory of a worker (the high-water mark of Ray's worker processes; the local
engine's is this process's). The speed-up is Ray with two workers over Ray with one; shards hold 1,024 users
(`--shard-users`; the default of run-batch, 16,384, would give two workers uneven shares at these sizes).
The scorers are compared on 10,000 users drawn at random (`--scorer-users`). Run by hand; at the default
sizes over an hour on a 2-core machine the first time (the 10^5 x 10^5 sample has ~1.75 x 10^8 rows).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pyarrow.csv as pa_csv
from common import child, load_average, machine
from threadpoolctl import threadpool_limits

from recgen.artifacts import ModelFile, file_sha256
from recgen.constants import BIG_MATRIX, SCORER_FLAT, SCORER_IVF, SCORER_NUMPY, TOP_K
from recgen.engines import LocalExecutor, ModelRef, Placement, shard_bounds
from recgen.engines.ray import RayExecutor
from recgen.features import Inputs, Interactions, exposure_counts, load_catalog, seen_matrix_indptr
from recgen.models import load_model
from recgen.models.hybrid.family import HybridFamily
from recgen.models.hybrid.refit import TowerOutputs, refit_users, user_outputs
from recgen.models.hybrid.scorer import user_vectors_shard
from recgen.models.hybrid.settings import target
from recgen.models.hybrid.solves import factors_shard, shard_rows
from recgen.models.hybrid.training import fit_towers
from recgen.models.keras_base import save, tower_outputs
from recgen.scoring import IVF_NPROBE, ivf_lists, top_k_vectors, video_table
from recgen.store.engine import get_engine

PROJECTED_USERS, PROJECTED_VIDEOS = 10**8, 10**7
KUAIREC_ROWS_PER_USER = 11_564_987 / 7_176  # de-duplicated big_matrix rows per user
RESIDUAL_SWEEPS = 8  # HybridSettings.residual_steps
SIZE = re.compile(r"u(\d+)k-v(\d+)k")
SCORING_STAGES = {"scoring": SCORER_NUMPY, "scoring, flat": SCORER_FLAT}  # the exact scorers
STUB_ROWS = 100_000  # big_matrix rows ingested with the catalogue (the rest is read from the CSV)


# ---------------------------------------------------------------- data and model, made once per size


def prepare(size: str, out: Path):
    """The size's inputs, as the features stage gives them: the sample (generated once); its catalogue files
    ingested into a database (with a stub of big_matrix: ingesting 10^8 rows into SQLite takes more memory
    than this machine has); and big_matrix's rows read straight from the CSV (cached as numpy)."""
    sample = out / size
    data = sample / "KuaiRec 2.0" / "data"
    if not (data / "small_matrix.csv").is_file():
        shutil.rmtree(sample, ignore_errors=True)
        match = SIZE.fullmatch(size)
        sizes = ["--scale", size] if match is None else ["--users", f"{match[1]}000", "--videos", f"{match[2]}000"]
        print(f"{size}: generating the sample", flush=True)
        seconds, peak, _ = child(["recgen", "sample", str(sample), *sizes, "--seed", "42"])
        print(f"{size}: sample in {seconds:.0f} s, peak {peak:.2f} GB", flush=True)
    db = out / f"{size}-catalogue" / "recs.db"
    if not (db.parent / "ingested").is_file():
        shutil.rmtree(db.parent, ignore_errors=True)
        stub = db.parent / "data"
        stub.mkdir(parents=True)
        for path in data.iterdir():
            if path.name != BIG_MATRIX:
                os.link(path, stub / path.name)
        with open(data / BIG_MATRIX, "rb") as full, open(stub / BIG_MATRIX, "wb") as head:
            head.writelines(line for _, line in zip(range(STUB_ROWS + 1), full, strict=False))
        subprocess.run(["recgen", "--quiet", "ingest", "--data-dir", str(stub), "--db", str(db)], check=True)
        (db.parent / "ingested").touch()
    engine = get_engine(db)
    catalog = load_catalog(engine)
    train = _training_rows(data / BIG_MATRIX, catalog, db.parent / "train.npz")
    seen = seen_matrix_indptr(train, len(catalog.user_ids))
    return engine, Inputs(catalog, train, seen, exposure_counts(train, len(catalog.video_ids)))


def _training_rows(path: Path, catalog, cache: Path) -> Interactions:
    """big_matrix's rows (as generated: its exact duplicates too) as index arrays, read a block at a time (the
    whole file's columns at once take more memory than this machine has)."""
    if not cache.is_file():
        columns = {"user_id": [], "video_id": [], "watch_ratio": []}
        convert = pa_csv.ConvertOptions(include_columns=list(columns))
        for batch in pa_csv.open_csv(
            path, read_options=pa_csv.ReadOptions(block_size=1 << 26), convert_options=convert
        ):
            columns["user_id"].append(catalog.user_index(batch.column("user_id").to_numpy()).astype(np.int32))
            columns["video_id"].append(catalog.video_index(batch.column("video_id").to_numpy()).astype(np.int32))
            columns["watch_ratio"].append(batch.column("watch_ratio").to_numpy().astype(np.float32))
        users, videos, ratios = (np.concatenate(parts) for parts in columns.values())
        del columns
        np.savez(cache, users=users, videos=videos, watch_ratio=ratios)
    arrays = np.load(cache)
    return Interactions(arrays["users"], arrays["videos"], arrays["watch_ratio"])


def trained_towers(engine, inputs, epochs: int, fit_rows: int, folder: Path):
    """The default model with its towers fitted for `epochs` on at most `fit_rows` training rows drawn at random
    (saved once in `folder`): the stages measured take the towers as given."""
    family = HybridFamily(42, epochs=epochs)
    saved = folder / f"towers-{epochs}.keras"
    if saved.is_file():
        return family, load_model(saved), saved
    rows = inputs.train
    if len(rows) > fit_rows:
        keep = np.random.default_rng(0).random(len(rows)) < fit_rows / len(rows)
        rows = Interactions(rows.users[keep], rows.videos[keep], rows.watch_ratio[keep])
    keras_model = family.build(engine, inputs.catalog, rows)
    started = time.perf_counter()
    fit_towers(keras_model, rows, family.settings, print)
    print(f"towers fitted in {time.perf_counter() - started:.0f} s", flush=True)
    path, _ = save(keras_model, folder)
    path.rename(saved)
    return family, keras_model, saved


# ---------------------------------------------------------------- measuring


class WorkerMemory:
    """Peak resident memory of one worker while a stage runs: the high-water mark of Ray's worker processes
    (named `ray::...`; reset when the stage starts, read every 0.5 s, new workers looked for every 2 s so the
    looking takes no core from them); the local engine's work runs in this process, whose mark is read."""

    def __init__(self, local: bool):
        self.local, self.peak, self.done = local, 0, threading.Event()

    def __enter__(self):
        self.pids = {"self"} if self.local else set(_ray_workers())
        for pid in self.pids:
            Path(f"/proc/{pid}/clear_refs").write_text("5")  # resets VmHWM
        if not self.local:
            self.thread = threading.Thread(target=self._sample, daemon=True)
            self.thread.start()
        return self

    def _sample(self):
        looked = time.monotonic()
        while not self.done.wait(0.5):
            if time.monotonic() - looked > 2:
                self.pids |= set(_ray_workers())
                looked = time.monotonic()
            self._read()

    def _read(self):
        for pid in list(self.pids):
            try:
                self.peak = max(self.peak, _status_kb(pid, "VmHWM"))
            except OSError:  # a worker that ended: its mark was read while it ran
                self.pids.discard(pid)

    def __exit__(self, *exc):
        self.done.set()
        if not self.local:
            self.thread.join()
        self._read()

    @property
    def gb(self) -> float:
        return self.peak / 1024**2


def _ray_workers() -> list[str]:
    pids = []
    for pid in os.listdir("/proc"):
        try:
            if pid.isdigit() and Path(f"/proc/{pid}/cmdline").read_bytes().startswith(b"ray::"):
                pids.append(pid)
        except OSError:
            continue
    return pids


def _status_kb(pid: str, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def timed(executor, work, units: float) -> dict:
    with WorkerMemory(isinstance(executor, LocalExecutor)) as memory:
        started = time.perf_counter()
        work()
        seconds = time.perf_counter() - started
    return {"seconds": seconds, "rate": units / seconds, "peak_gb": memory.gb}


def stages(executor, keras_model, file: ModelFile, family, inputs, shard_users: int) -> dict[str, dict]:
    """Each distributed stage once on `executor`: seconds, rate and a worker's peak memory."""
    settings = family.settings
    rows, catalog = inputs.train, inputs.catalog
    n_users, n_videos = len(catalog.user_ids), len(catalog.video_ids)
    user_shards = shard_bounds(n_users, shard_users)
    model = ModelRef(file, keras_model)
    results = {}
    # Workers that load the model start once per engine (Ray's fixed overhead, measured on its own below).
    executor.map(user_vectors_shard, [(0, 1)] * executor.workers, shared=(None,), model=model)
    results["tower inference"] = timed(
        executor,
        lambda: executor.map(user_vectors_shard, user_shards, shared=(None,), model=model),
        n_users,
    )
    warm = np.flatnonzero(np.bincount(rows.users, minlength=n_users) > 0)
    for stage, method in SCORING_STAGES.items():
        placement = Placement(executor, shard_users, method)
        scorer = family.scorer(keras_model, catalog, placement=placement, model_file=file)
        results[stage] = timed(executor, lambda s=scorer: s.top_k(warm, *inputs.seen, k=TOP_K), len(warm) * n_videos)
    # the refit's and the factors' inputs, made here as training makes them (not timed)
    users = user_outputs(LocalExecutor(), ModelRef(None, keras_model), user_shards)
    video_vectors, video_bias = tower_outputs(keras_model.get_layer("video_tower"), n_videos)
    videos = TowerOutputs(video_vectors.astype(np.float32), video_bias[:, 0].astype(np.float32))
    targets = target(rows.watch_ratio, settings)
    by_user, _ = shard_rows(rows.users, rows.videos, targets, n_users, user_shards)
    width = keras_model.get_layer("user_tower").get_layer("user_refit").n_features - 1
    fitted = np.bincount(rows.users, minlength=n_users) > 0
    results["refit"] = timed(
        executor,
        lambda: refit_users(
            executor,
            users,
            videos,
            by_user,
            rows.users,
            rows.videos,
            targets,
            fitted,
            width,
            settings.huber_delta,
            settings.expectile,
        ),  # fmt: skip
        len(rows),
    )
    rng = np.random.default_rng(0)
    residual = rng.normal(0, 0.3, len(rows)).astype(np.float32)  # the arithmetic does not depend on the values
    factors = [rng.normal(0, 0.01, (n, settings.residual_rank)).astype(np.float32) for n in (n_users, n_videos)]
    for side, (own, other, n) in enumerate(((rows.users, rows.videos, n_users), (rows.videos, rows.users, n_videos))):
        parts, _ = shard_rows(own, other, residual, n, shard_bounds(n, shard_users))
        items = [(executor.share(part), np.ones(part.n_ids, dtype=bool)) for part in parts]
        shared = (executor.share(factors[1 - side]), settings.residual_ridge)
        name = f"factors, {'user' if side == 0 else 'video'} step"
        results[name] = timed(executor, lambda i=items, s=shared: executor.map(factors_shard, i, shared=s), len(rows))
    return results


def scorers(keras_model, family, inputs, nprobes: list[int], n_users: int) -> list[tuple]:
    """The scorers side by side in this process on the trained towers, for `n_users` users drawn at random:
    pairs/s, and recall@50 against the exact lists (the numpy scorer's)."""
    catalog = inputs.catalog
    scorer = family.scorer(keras_model, catalog)
    warm = np.flatnonzero(np.bincount(inputs.train.users, minlength=len(catalog.user_ids)) > 0)
    if len(warm) > n_users:
        warm = np.sort(np.random.default_rng(0).choice(warm, n_users, replace=False))
    pairs = len(warm) * len(catalog.video_ids)
    out, exact = [], None
    for method, nprobe in [(SCORER_NUMPY, None), (SCORER_FLAT, None), *[(SCORER_IVF, n) for n in nprobes]]:
        started = time.perf_counter()
        table = video_table(scorer.video_vec, scorer.video_bias, method, nprobe=nprobe or IVF_NPROBE)
        built = time.perf_counter() - started
        started = time.perf_counter()
        found = top_k_vectors(scorer.user_vec, scorer.user_bias, warm, *inputs.seen, table, TOP_K, scorer.transform)
        seconds = time.perf_counter() - started
        pairs_found = set(zip(found[0].tolist(), found[1].tolist(), strict=True))
        exact = exact or pairs_found
        recall = len(pairs_found & exact) / len(exact)
        out.append((method if nprobe is None else f"{method}, nprobe {nprobe}", built, pairs / seconds, recall))
    return out


def _scoring_block(_: int) -> float:
    """Seconds of one shard's scoring arithmetic, single-threaded: 1,024 users against 100,000 videos, 5 times."""
    rng = np.random.default_rng(0)
    users = rng.normal(size=(1024, 64)).astype(np.float32)
    videos = rng.normal(size=(64, 100_000)).astype(np.float32)
    started = time.perf_counter()
    with threadpool_limits(limits=1):
        for _ in range(5):
            np.argpartition(-(users @ videos), TOP_K, axis=1)
    return time.perf_counter() - started


def ceiling() -> float:
    """What two workers can gain on this machine at most: the same arithmetic in one process alone, then in two
    at once (plain processes, no Ray; medians of 3); the speed-up of two over one."""
    with ProcessPoolExecutor(2) as pool:
        list(pool.map(_scoring_block, range(2)))  # both processes started and warm
        alone = statistics.median(pool.submit(_scoring_block, 0).result() for _ in range(3))
        both = statistics.median(max(pool.map(_scoring_block, range(2))) for _ in range(3))
    return 2 * alone / both


def ray_overhead(out: Path) -> tuple[float, float]:
    """Median wall seconds of a warm `run-batch` on the tiny sample: local, and with --engine ray."""
    sample, db = out / "tiny", out / "tiny-overhead" / "recs.db"
    if not (sample / "KuaiRec 2.0").is_dir():
        subprocess.run(["recgen", "sample", str(sample), "--scale", "tiny"], check=True, capture_output=True)
    shutil.rmtree(db.parent, ignore_errors=True)
    base = ["recgen", "--quiet", "run-batch", "--data-dir", str(sample), "--db", str(db)]
    child(base)  # trains the models once: the runs measured reload them
    times = {"local": [], "ray": []}
    for _ in range(3):
        for engine in times:
            times[engine].append(child([*base, "--engine", engine])[0])
    return statistics.median(times["local"]), statistics.median(times["ray"])


# ---------------------------------------------------------------- reporting


def report(measured: dict[str, dict[str, dict[str, dict]]]) -> None:
    units = {"tower inference": "users/s", "refit": "rows/s", **dict.fromkeys(SCORING_STAGES, "pairs/s")}
    print("\n| size | stage | local | Ray, 1 worker | Ray, 2 workers | speed-up 1 -> 2 | peak memory per worker |")
    print("|---|---|---:|---:|---:|---:|---|")
    for size, engines in measured.items():
        for stage in engines["local"]:
            cells = [engines[e][stage] for e in ("local", "ray-1", "ray-2")]
            unit = units.get(stage, "rows/s")
            speedup = cells[2]["rate"] / cells[1]["rate"]
            memory = " / ".join(f"{c['peak_gb']:.2f}" for c in cells)
            print(
                f"| {size} | {stage} | "
                + " | ".join(f"{c['rate']:,.0f} {unit} ({c['seconds']:.1f} s)" for c in cells)
                + f" | **{speedup:.2f}x** | {memory} GB |"
            )


def projection(engines: dict[str, dict], rows_per_user: float, ivf_share: float) -> None:
    """Core-hours and wall time at 10^8 users x 10^7 videos from the per-worker rates (Ray, one worker) of the
    largest size, and the two-worker efficiency measured beside them."""
    one, two = engines["ray-1"], engines["ray-2"]
    rows = PROJECTED_USERS * rows_per_user
    work = {
        "tower inference": (PROJECTED_USERS, "users"),
        "refit": (rows, "rows"),
        "factors, user step": (rows * RESIDUAL_SWEEPS, "rows x sweeps"),
        "factors, video step": (rows * RESIDUAL_SWEEPS, "rows x sweeps"),
        **dict.fromkeys(SCORING_STAGES, (PROJECTED_USERS * PROJECTED_VIDEOS, "pairs")),
    }
    print(
        f"\nProjection to {PROJECTED_USERS:.0e} users x {PROJECTED_VIDEOS:.0e} videos ({rows_per_user:,.0f} training "
        "rows per user, 8 sweeps): core-hours = work / (per-worker rate x 3600); wall time on N cores = core-hours "
        "/ (N x efficiency), efficiency = the measured 2-worker speed-up / 2.\n"
    )
    print("| stage | work | per-worker rate | core-hours | efficiency | wall, 100 cores | wall, 1,000 cores |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for stage, (amount, unit) in work.items():
        rate = one[stage]["rate"]
        efficiency = min(1.0, two[stage]["rate"] / rate / 2)
        hours = amount / rate / 3600
        walls = [hours / (cores * efficiency) for cores in (100, 1000)]
        print(
            f"| {stage} | {amount:.1e} {unit} | {rate:,.0f}/s | {hours:,.0f} | {efficiency:.2f} | "
            + " | ".join(_duration(w) for w in walls)
            + " |"
        )
    hours = work["scoring"][0] * ivf_share / one["scoring"]["rate"] / 3600
    efficiency = min(1.0, two["scoring"]["rate"] / one["scoring"]["rate"] / 2)
    walls = [hours / (cores * efficiency) for cores in (100, 1000)]
    print(
        f"| scoring, ivf (searches {ivf_share:.1%} of the videos at numpy's pairs/s) | | | {hours:,.0f} | "
        f"{efficiency:.2f} | " + " | ".join(map(_duration, walls)) + " |"
    )


def _duration(hours: float) -> str:
    return f"{hours:,.1f} h" if hours >= 1 else f"{hours * 60:,.0f} min"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", default=["full", "u100k-v100k"])
    parser.add_argument("--out", type=Path, default=Path("/tmp/recgen-scale"))
    parser.add_argument("--epochs", type=int, default=1, help="epochs of the towers' fit (vectors for the recall)")
    parser.add_argument("--fit-rows", type=int, default=12_530_806, help="rows of the towers' fit (KuaiRec's)")
    parser.add_argument(
        "--shard-users", type=int, default=1024, help="users per shard: small enough that two workers get even shares"
    )
    parser.add_argument("--scorer-users", type=int, default=10_000, help="users in the scorers' comparison")
    parser.add_argument("--nprobe", type=int, nargs="+", default=[8, IVF_NPROBE, 128])
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    print(machine(), flush=True)
    ray_two = RayExecutor(workers=2)
    ray_one = RayExecutor(workers=1)  # the same cluster, one shard at a time
    engines = {"local": LocalExecutor(), "ray-1": ray_one, "ray-2": ray_two}
    measured = {}
    try:
        for size in args.sizes:
            engine, inputs = prepare(size, args.out)
            family, keras_model, path = trained_towers(
                engine, inputs, args.epochs, args.fit_rows, args.out / f"{size}-catalogue"
            )
            file = ModelFile(str(path), file_sha256(path), load_model)
            n_users, n_videos, n_rows = len(inputs.catalog.user_ids), len(inputs.catalog.video_ids), len(inputs.train)
            shards = len(shard_bounds(n_users, args.shard_users))
            print(
                f"\n{size}: {n_users:,} users x {n_videos:,} videos, {n_rows:,} training rows, {shards} user shards",
                flush=True,
            )
            measured[size] = {}
            for name, executor in engines.items():
                measured[size][name] = stages(executor, keras_model, file, family, inputs, args.shard_users)
                line = ", ".join(f"{s} {r['seconds']:.1f} s" for s, r in measured[size][name].items())
                print(f"  {name}: {line} (load average {load_average()})", flush=True)
            print(f"\n{size}: the scorers in this process, on the towers' vectors, {args.scorer_users:,} users")
            print("| scorer | index built | pairs/s | recall@50 against exact |\n|---|---:|---:|---:|")
            for method, built, rate, recall in scorers(keras_model, family, inputs, args.nprobe, args.scorer_users):
                print(f"| {method} | {built:.1f} s | {rate:,.0f} | {recall:.4f} |", flush=True)
    finally:
        ray_one.close()
        ray_two.close()
    report(measured)
    print(
        f"\nThis machine's own limit for two workers: the scoring arithmetic in two plain processes at once runs "
        f"{ceiling():.2f}x as fast as in one"
    )
    local, ray = ray_overhead(args.out)
    print(
        f"\nRay's fixed overhead: a warm run-batch of the tiny sample takes {local:.1f} s locally and {ray:.1f} s "
        f"with --engine ray (a new local cluster, its workers started, the model loaded): {ray - local:+.1f} s"
    )
    projection(measured[args.sizes[-1]], KUAIREC_ROWS_PER_USER, IVF_NPROBE / ivf_lists(PROJECTED_VIDEOS))
    print(f"\nload average after: {load_average()}; command: python benchmarks/scale.py {' '.join(sys.argv[1:])}")


if __name__ == "__main__":
    main()
