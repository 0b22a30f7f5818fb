"""The per-user tables fitted after training (the refit's correction, the user side of the residual factors),
kept beside the model file instead of inside it when the per-user stages run on a cluster.

They grow with the users (~80 floats each): inside the `.keras` file, every worker that loads the model would
load all of them. Outside, they are Parquet files of consecutive user ranges, each recorded in
`model_user_tables` with its SHA-256, and a worker reads only the ranges of its own shards. The model keeps
zeros in their place (`network.ExternalTable`); `add_to` puts them back into the towers' outputs.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from recgen.artifacts import file_sha256, verify

PART_NAME = "users-{first:09d}-{stop:09d}.parquet"
CORRECTION, FACTOR = "correction_", "factor_"  # column name prefixes


@dataclass(frozen=True)
class UserTablePart:
    first: int  # users first..stop-1
    stop: int
    path: str
    sha256: str


@dataclass(frozen=True)
class UserTables:
    """Rows of (correction: `width` vector columns and the bias, then `rank` factors) for every user."""

    parts: tuple[UserTablePart, ...]
    width: int
    rank: int

    def read(self, start: int, stop: int) -> np.ndarray:
        """The rows of users start..stop-1, from the parts that hold them, each checked against its SHA-256."""
        pieces = []
        for part in self.parts:
            if part.stop <= start or part.first >= stop:
                continue
            values = _read_part(part)
            pieces.append(values[max(start, part.first) - part.first : min(stop, part.stop) - part.first])
        table = np.concatenate(pieces) if pieces else np.zeros((0, self.width + 1 + self.rank), np.float32)
        if len(table) != stop - start:
            raise ValueError(f"the per-user tables hold {len(table)} of users {start}..{stop - 1}")
        return table

    def add_to(self, vectors: np.ndarray, bias: np.ndarray, start: int) -> None:
        """Put the rows of users start..start+len(bias)-1 into their tower outputs, in place: the correction
        added to the vector's first `width` columns and to the bias, the factors in its last `rank`."""
        table = self.read(start, start + len(bias))
        vectors[:, : self.width] += table[:, : self.width]
        bias += table[:, self.width]
        if self.rank:
            vectors[:, vectors.shape[1] - self.rank :] = table[:, self.width + 1 :]

    @classmethod
    def of(cls, parts: list[UserTablePart]) -> UserTables:
        """The tables of these files, their layout read from the first one's column names."""
        names = pq.read_schema(parts[0].path).names
        rank = sum(name.startswith(FACTOR) for name in names)
        return cls(tuple(parts), len(names) - rank - 1, rank)

    def moved_to(self, folder: Path) -> UserTables:
        return replace(self, parts=tuple(replace(p, path=str(folder / Path(p.path).name)) for p in self.parts))


_VERIFIED: set[tuple[str, str]] = set()  # parts this process has checked (a worker reads each many times)


def _read_part(part: UserTablePart) -> np.ndarray:
    if (part.path, part.sha256) not in _VERIFIED:
        verify(Path(part.path), part.sha256)
        _VERIFIED.add((part.path, part.sha256))
    table = pq.read_table(part.path)
    return np.column_stack([column.to_numpy() for column in table.columns]).astype(np.float32, copy=False)


def write_user_tables(
    folder: Path, correction: np.ndarray, factors: np.ndarray, shards: list[tuple[int, int]]
) -> UserTables:
    """One Parquet file per shard of users in a new folder `folder`/.tmp-users-*, to be renamed beside the model
    file once it is saved (a killed run leaves only a `.tmp-` folder, removed by the next run)."""
    target = folder / f".tmp-users-{uuid.uuid4().hex[:12]}"
    target.mkdir(parents=True)
    width = correction.shape[1] - 1
    names = [f"{CORRECTION}{i}" for i in range(width)] + [f"{CORRECTION}bias"]
    names += [f"{FACTOR}{i}" for i in range(factors.shape[1])]
    values = np.hstack([correction, factors]).astype(np.float32)
    parts = []
    for first, stop in shards:
        path = target / PART_NAME.format(first=first, stop=stop)
        rows = values[first:stop]
        pq.write_table(pa.table({name: rows[:, i] for i, name in enumerate(names)}), path)
        parts.append(UserTablePart(first, stop, str(path), file_sha256(path)))
    return UserTables(tuple(parts), width, factors.shape[1])
