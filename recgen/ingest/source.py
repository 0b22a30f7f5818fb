"""Where the KuaiRec CSVs are: a folder in any KuaiRec layout, or the zip itself, read in place; their sizes and
hashes."""

from __future__ import annotations

import contextlib
import hashlib
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from recgen.constants import (
    DATA_SUBDIRS,
    ITEM_CATEGORIES,
    KUAIREC_FILES,
)
from recgen.errors import DataError, MissingInputError, one_line

HASH_BLOCK_BYTES = 1 << 20


ZIP_SEPARATOR = "::"


@dataclass(frozen=True)
class DataSource:
    """The KuaiRec CSVs in a folder, or inside a zip under `folder` (read in place, never extracted)."""

    root: Path  # the folder holding the CSVs, or the zip file
    folder: str = ""  # member prefix inside the zip ("KuaiRec 2.0/data/"); "" for a folder

    @property
    def is_zip(self) -> bool:
        return self.root.is_file()

    def __str__(self) -> str:
        return f"{self.root}{ZIP_SEPARATOR}{self.folder.rstrip('/')}" if self.is_zip else str(self.root)

    def path_of(self, name: str) -> str:
        """Where `name` is read from: a path, or `zip path::member`."""
        return f"{self.root}{ZIP_SEPARATOR}{self.folder}{name}" if self.is_zip else str(self.root / name)

    def names(self) -> set[str]:
        """The KuaiRec file names present."""
        if self.is_zip:
            with zipfile.ZipFile(self.root) as archive:
                members = set(archive.namelist())
            return {name for name in KUAIREC_FILES if self.folder + name in members}
        return {name for name in KUAIREC_FILES if (self.root / name).is_file()}

    def require_all(self) -> None:
        """Raise MissingInputError naming every KuaiRec file that is not there."""
        missing = [name for name in KUAIREC_FILES if name not in self.names()]
        if missing:
            hint = ""
            if ITEM_CATEGORIES in missing and self._has("item_feat.csv"):
                hint = " (this looks like KuaiRec 1.0, which has item_feat.csv; recgen reads KuaiRec 2.0)"
            raise MissingInputError(f"{', '.join(missing)} not found in {self}{hint}")

    def _has(self, name: str) -> bool:
        if self.is_zip:
            with zipfile.ZipFile(self.root) as archive:
                return self.folder + name in archive.namelist()
        return (self.root / name).is_file()

    def size(self, name: str) -> int:
        if self.is_zip:
            with zipfile.ZipFile(self.root) as archive:
                return archive.getinfo(self.folder + name).file_size
        return (self.root / name).stat().st_size

    @contextlib.contextmanager
    def open(self, name: str) -> Iterator[BinaryIO]:
        """The file's bytes as a binary stream (a zip member is decompressed as it is read)."""
        if self.is_zip:
            try:
                with zipfile.ZipFile(self.root) as archive, archive.open(self.folder + name) as member:
                    yield member
            except (zipfile.BadZipFile, zlib.error, EOFError) as exc:  # raised while the caller reads
                raise DataError(
                    f"{self.root}: corrupt zip, {name} cannot be read ({one_line(exc)}); fetch it again "
                    "(recgen download)"
                ) from None
        else:
            with open(self.root / name, "rb") as handle:
                yield handle

    def sha256(self, name: str) -> str:
        digest = hashlib.sha256()
        with self.open(name) as stream:
            while block := stream.read(HASH_BLOCK_BYTES):
                digest.update(block)
        return digest.hexdigest()


def locate_data(source: Path | str) -> DataSource:
    """Find the KuaiRec CSVs in `source`: a folder in any KuaiRec layout or KuaiRec.zip itself.

    Searches `KuaiRec 2.0/data`, `KuaiRec/data`, `data` and the folder itself, in that order, and takes
    the first that holds any KuaiRec file; a folder holding only `KuaiRec.zip` is read through the zip.
    Raises MissingInputError naming what was searched.
    """
    root = Path(source).expanduser()
    if not root.exists():
        raise MissingInputError(f"data source {root} does not exist")
    if root.is_file():
        if not zipfile.is_zipfile(root):
            raise DataError(f"data source {root} is a file but not a readable zip (corrupt or truncated?)")
        with zipfile.ZipFile(root) as archive:
            members = set(archive.namelist())
        for sub in DATA_SUBDIRS:
            folder = f"{sub}/" if sub else ""
            if any(folder + name in members for name in KUAIREC_FILES):
                return DataSource(root, folder)
        searched = ", ".join(f"{sub or '.'}/" for sub in DATA_SUBDIRS)
        raise MissingInputError(f"no KuaiRec CSV in {root} (searched members {searched})")
    for sub in DATA_SUBDIRS:
        folder = root / sub
        if folder.is_dir() and any((folder / name).is_file() for name in KUAIREC_FILES):
            return DataSource(folder)
    if (root / "KuaiRec.zip").is_file():
        return locate_data(root / "KuaiRec.zip")
    searched = ", ".join(str(root / sub) for sub in DATA_SUBDIRS)
    raise MissingInputError(f"no KuaiRec CSV found (searched {searched} and {root / 'KuaiRec.zip'})")
