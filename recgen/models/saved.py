"""Saved models: train a family's model and record it, or reload the newest intact one.

A model is reloaded (`--retrain auto`) when one of the same family and settings was trained on the same
data and its file still has the SHA-256 recorded in `models` (and so does every per-user table kept beside
it, `model_user_tables`); a missing, changed or unreadable file means retraining, with a warning, never a
wrong model.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import keras
from sqlalchemy import Engine, insert, select

from recgen.artifacts import ModelFile, file_sha256
from recgen.constants import RETRAIN_ALWAYS, RETRAIN_NEVER, USER_TABLES_SUFFIX
from recgen.engines import Placement, local_placement
from recgen.errors import MissingInputError
from recgen.features import Catalog, Interactions
from recgen.models.hybrid.user_tables import UserTablePart, UserTables
from recgen.models.keras_base import architecture, save
from recgen.models.registry import Family, load_model
from recgen.progress import Reporter
from recgen.store.engine import utc_now
from recgen.store.schema import model_user_tables, models

Log = Callable[[str], None]


@dataclass(frozen=True)
class SavedModel:
    keras_model: keras.Model
    model_id: int
    trained: bool  # False if reloaded
    file: ModelFile  # what workers on other hosts load
    user_tables: UserTables | None = None  # per-user tables kept beside the file, if any


def train_or_reload(
    engine: Engine,
    chosen: Family,
    catalog: Catalog,
    train_rows: Interactions,
    fingerprint: str,
    retrain: str,
    models_dir: Path,
    reporter: Reporter,
    warn: Log,
    placement: Placement | None = None,
) -> SavedModel:
    """Reload the newest intact model of this family, settings and data (`retrain` auto), else train one."""
    log = reporter.log
    key = chosen.key()
    placement = placement or local_placement()
    if retrain != RETRAIN_ALWAYS:
        found = _reusable(engine, chosen.name, key, None if retrain == RETRAIN_NEVER else fingerprint, models_dir, warn)
        if found is not None:
            log(f"reloaded {chosen.name} model {found.model_id} (data and settings unchanged)")
            return found
        if retrain == RETRAIN_NEVER:
            raise MissingInputError(f"--retrain never: no usable saved {chosen.name} model; run with --retrain auto")
    keras_model = chosen.build(engine, catalog, train_rows, placement)
    log(f"training the {chosen.name} model on {len(train_rows):,} interactions")
    report = chosen.train(keras_model, train_rows, reporter, placement)
    path, digest = save(keras_model, models_dir)
    tables = report.user_tables
    if tables is not None:  # beside the model file, named after it
        folder = path.with_suffix(USER_TABLES_SUFFIX)
        os.replace(Path(tables.parts[0].path).parent, folder)
        tables = tables.moved_to(folder)
    with engine.begin() as conn:
        model_id = conn.execute(
            models.insert().values(
                name=chosen.name,
                path=str(path),
                sha256=digest,
                architecture=architecture(keras_model),
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
        if tables is not None:
            rows = [
                {"model_id": model_id, "first_user": p.first, "stop_user": p.stop, "path": p.path, "sha256": p.sha256}
                for p in tables.parts
            ]
            conn.execute(insert(model_user_tables), rows)
    return SavedModel(keras_model, int(model_id), True, ModelFile(str(path), digest, load_model), tables)


def _reusable(
    engine: Engine, name: str, key: str, fingerprint: str | None, models_dir: Path, warn: Log
) -> SavedModel | None:
    """The newest saved model with these settings (and data), if its file is intact; None otherwise.

    The file is looked for where it was saved, else under the same name in `models_dir`: a shared
    artifacts folder may be mounted elsewhere on this host. Either way its SHA-256 must match."""
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
    if not path.is_file() and (models_dir / path.name).is_file():
        path = models_dir / path.name
    if not path.is_file() or file_sha256(path) != row.sha256:
        warn(f"saved {name} model {row.id} at {path} is missing or changed (sha256 mismatch); retrained")
        return None
    parts = _user_table_parts(engine, int(row.id), models_dir)
    if not all(_intact(Path(p.path), p.sha256) for p in parts):
        warn(f"the per-user tables of saved {name} model {row.id} are missing or changed (sha256 mismatch); retrained")
        return None
    try:
        keras_model = load_model(path)
    except Exception as exc:  # a corrupt file must mean retraining, never a crash
        warn(f"saved {name} model {row.id} at {path} cannot be loaded ({type(exc).__name__}); retrained")
        return None
    tables = UserTables.of(parts) if parts else None
    return SavedModel(keras_model, int(row.id), False, ModelFile(str(path), row.sha256, load_model), tables)


def _intact(path: Path, sha256: str) -> bool:
    return path.is_file() and file_sha256(path) == sha256


def _user_table_parts(engine: Engine, model_id: int, models_dir: Path) -> list[UserTablePart]:
    """The model's per-user table files as recorded (looked for where they were written, else under the same
    folder name in `models_dir`)."""
    query = select(model_user_tables).where(model_user_tables.c.model_id == model_id)
    with engine.connect() as conn:
        rows = conn.execute(query.order_by(model_user_tables.c.first_user)).all()
    parts = []
    for row in rows:
        path = Path(row.path)
        if not path.is_file() and (models_dir / path.parent.name / path.name).is_file():
            path = models_dir / path.parent.name / path.name
        parts.append(UserTablePart(int(row.first_user), int(row.stop_user), str(path), row.sha256))
    return parts
