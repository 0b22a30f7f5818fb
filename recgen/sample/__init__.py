"""The synthetic KuaiRec generator (`recgen sample`), and the embedded sample `run-batch` uses when no data
is configured."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from recgen.constants import GROUND_TRUTH, SEED
from recgen.sample.generate import DATA_SUBDIR, generate_sample
from recgen.sample.params import custom_scale

__all__ = ["custom_scale", "embedded_sample", "generate_sample", "is_synthetic"]


def embedded_sample(sample_dir: Path, scale: str, log: Callable[[str], None]) -> Path:
    """The synthetic sample used when no data is configured: generated once, then reused."""
    if (sample_dir / DATA_SUBDIR).is_dir():
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
