"""Model artifacts: files written once by a run and read by every host and worker after it (the saved `.keras`
models and the per-user tables kept beside them), each checked against the SHA-256 recorded in `models`."""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from recgen.errors import DataError, MissingInputError


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def verify(path: Path, sha256: str) -> None:
    """Raise unless `path` exists here with the recorded SHA-256: a worker must never use another file."""
    if not path.is_file():
        raise MissingInputError(f"{path} is not on this host: --artifacts must be a folder every host can read")
    if file_sha256(path) != sha256:
        raise DataError(f"{path} has changed since it was recorded (sha256 mismatch)")


@dataclass(frozen=True)
class ModelFile:
    """A saved Keras model as workers find it: its path, its SHA-256, and the function that loads it (it
    knows every family's custom layers; passed in, so that this module imports no model code)."""

    path: str
    sha256: str
    loader: Callable[[Path], Any]

    def load(self) -> Any:
        verify(Path(self.path), self.sha256)
        return self.loader(Path(self.path))


def remove_partial_files(models_dir: Path, log: Callable[[str], None]) -> None:
    """A process killed while saving leaves `.tmp-*` files and folders; never recorded, they are only litter."""
    for partial in models_dir.glob(".tmp-*"):
        if partial.is_dir():
            shutil.rmtree(partial, ignore_errors=True)
        else:
            partial.unlink(missing_ok=True)
        log(f"removed {partial.name}, a model file a killed run left half-written")
