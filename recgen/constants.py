"""Names, defaults and paths shared by every stage: the one place for numbers that mean something."""

from pathlib import Path

# Recommendation and evaluation.
TOP_K = 50
MAX_REJECTED = 0.01  # largest share of an input file's rows that may be set aside before a run fails
KEEP_RUNS = 7  # published runs whose recommendations and metrics run-batch keeps (--keep-runs)
SEED = 42
RELEVANT_WATCH_RATIO = 2.0  # KuaiRec paper's positive: watched at least twice through.
NDCG_GAIN_CAP = 5.0  # Graded gain min(watch_ratio, 5) so a handful of loops cannot dominate NDCG.
ITEM_MEAN_SHRINKAGE = 20.0  # Pseudo-count pulling a video's mean watch ratio towards the global mean.

# Scoring and bulk writes.
SCORE_BLOCK_USERS = 256  # Users scored per block: a block of float32 scores stays a few MB per 10k videos.
INSERT_CHUNK_ROWS = 200_000
# Input tables of at least this many rows are bulk-loaded through a staging file beside a SQLite database
# (`bulk.replace_rows`); below it, creating the file costs more than `executemany` of the rows.
STAGE_MIN_ROWS = 1_000
STAGE_SUFFIX = ".stage-"  # staging files are named <database>.stage-<pid>-<n>-<table>
# Large tables are staged as consecutive slices written at once, one staging file per STAGE_ROWS_PER_WRITER
# rows, one writer thread per usable core, up to MAX_STAGE_FILES: each file stays attached until the
# transaction ends, and SQLite attaches at most 10 databases.
STAGE_ROWS_PER_WRITER = 1_000_000
MAX_STAGE_FILES = 8
# PostgreSQL: rows per slice of CSV fed to COPY, and the session advisory lock that is the job lock
# ('recgen' in ASCII: any fixed 64-bit key other applications are unlikely to use).
COPY_CHUNK_ROWS = 250_000
ADVISORY_LOCK_KEY = 0x72656367656E

# Paths. The default database is relative to the working directory; models, the embedded sample and the
# lock live in the database's folder.
OUTPUT_DIR = Path("output")
DEFAULT_DB_PATH = OUTPUT_DIR / "recs.db"
MODELS_SUBDIR = "models"
SAMPLE_SUBDIR = "sample"
REPORT_SUBDIR = "report"
LOCK_FILE = "recgen.lock"
EMBEDDED_SAMPLE_SCALE = "small"
# The optional extras of the scale path, named in the error when they are missing.
POSTGRES_EXTRA = "recgen[postgres]"
RAY_EXTRA = "recgen[ray]"
FAISS_EXTRA = "recgen[faiss]"

# Engines that run the per-user stages (recgen.engines): this process, or a Ray cluster.
ENGINE_LOCAL = "local"
ENGINE_RAY = "ray"
ENGINE_CHOICES = (ENGINE_LOCAL, ENGINE_RAY)
# Users per shard of the per-user stages, on every engine alike: a multiple of SCORE_BLOCK_USERS, and one
# batch through the user tower (keras_base.PREDICT_BATCH at most).
SHARD_USERS = 16_384
RAY_RETRIES = 3  # times Ray reruns a shard whose worker died before the run fails
USER_TABLES_SUFFIX = ".users"  # a model's per-user tables kept beside it: the folder <model file stem>.users
# How every video is scored for a user (recgen.scoring): numpy and FAISS's flat index are exact; FAISS's
# inverted-file index is approximate (only when asked for; its recall is measured in benchmarks/scale.py).
SCORER_NUMPY = "numpy"
SCORER_FLAT = "flat"
SCORER_IVF = "ivf"
SCORER_CHOICES = (SCORER_NUMPY, SCORER_FLAT, SCORER_IVF)

# Every option of the CLI can come from an environment variable of this prefix (cron needs no wrapper script).
ENV_PREFIX = "RECGEN"

# KuaiRec file names, in the order they are loaded.
BIG_MATRIX = "big_matrix.csv"
SMALL_MATRIX = "small_matrix.csv"
ITEM_CATEGORIES = "item_categories.csv"
ITEM_DAILY_FEATURES = "item_daily_features.csv"
CAPTION_CATEGORY = "kuairec_caption_category.csv"
USER_FEATURES = "user_features.csv"
SOCIAL_NETWORK = "social_network.csv"
KUAIREC_FILES = (
    USER_FEATURES,
    ITEM_CATEGORIES,
    CAPTION_CATEGORY,
    ITEM_DAILY_FEATURES,
    SOCIAL_NETWORK,
    BIG_MATRIX,
    SMALL_MATRIX,
)
# What every model is built from: the catalogue and the training log. A model is retrained only when one of
# these changes; the evaluation matrix and the friend lists are not among them.
MODEL_INPUTS = (USER_FEATURES, ITEM_CATEGORIES, CAPTION_CATEGORY, ITEM_DAILY_FEATURES, BIG_MATRIX)
GROUND_TRUTH = "ground_truth.csv"  # Written by `recgen sample` only; never read by a model.
# KuaiRec's markers for a missing value: in text columns, and in the category ids of the caption file.
UNKNOWN = "UNKNOWN"
UNKNOWN_CATEGORY_ID = -124
# Folders searched for the CSVs, inside a directory or a zip, in this order.
DATA_SUBDIRS = ("KuaiRec 2.0/data", "KuaiRec/data", "data", "")

# Model families accepted by --model (recgen.models.registry).
MODEL_HYBRID = "hybrid"
MODEL_SEED = "seed"
MODEL_CHOICES = (MODEL_HYBRID, MODEL_SEED)
DEFAULT_MODEL = MODEL_HYBRID

# --retrain: reload the saved model when nothing that matters changed, train anyway, or never train.
RETRAIN_AUTO = "auto"
RETRAIN_ALWAYS = "always"
RETRAIN_NEVER = "never"
RETRAIN_CHOICES = (RETRAIN_AUTO, RETRAIN_ALWAYS, RETRAIN_NEVER)

# Sizes of the synthetic sample (recgen.sample.params.SCALES).
SAMPLE_SCALES = ("tiny", "small", "full")

# Run statuses.
STATUS_RUNNING = "running"
STATUS_FAILED = "failed"
STATUS_PUBLISHED = "published"
RUN_STATUSES = (STATUS_RUNNING, STATUS_FAILED, STATUS_PUBLISHED)

# run_metrics.model_name: the run's own model, and the baselines it is evaluated next to.
RUN_MODEL = "model"
BASELINE_RANDOM = "random"
BASELINE_POPULARITY = "popularity"
BASELINE_ITEM_MEAN = "item_mean"
BASELINES = (MODEL_SEED, BASELINE_ITEM_MEAN, BASELINE_POPULARITY, BASELINE_RANDOM)  # the order tables show

# Recommendation sources.
SOURCE_MODEL = "model"
SOURCE_CONTENT = "content"
SOURCE_POPULARITY = "popularity"
