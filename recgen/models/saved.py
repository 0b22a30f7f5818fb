"""Saved models: train a family's model and record it, or reload the newest intact one.

A model is reloaded (`--retrain auto`) when one of the same family and settings was trained on the same
data and its file still has the SHA-256 recorded in `models`; a missing, changed or unreadable file means
retraining, with a warning, never a wrong model.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import keras
from sqlalchemy import Engine, select

from recgen.constants import RETRAIN_ALWAYS, RETRAIN_NEVER
from recgen.errors import MissingInputError
from recgen.features import Catalog, Interactions
from recgen.models.keras_base import architecture, file_sha256, save
from recgen.models.registry import Family, load_model
from recgen.progress import Reporter
from recgen.store.engine import utc_now
from recgen.store.schema import models

Log = Callable[[str], None]


@dataclass(frozen=True)
class SavedModel:
    keras_model: keras.Model
    model_id: int
    trained: bool  # False if reloaded


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
) -> SavedModel:
    """Reload the newest intact model of this family, settings and data (`retrain` auto), else train one."""
    log = reporter.log
    key = chosen.key()
    if retrain != RETRAIN_ALWAYS:
        found = _reusable(engine, chosen.name, key, None if retrain == RETRAIN_NEVER else fingerprint, models_dir, warn)
        if found is not None:
            log(f"reloaded {chosen.name} model {found.model_id} (data and settings unchanged)")
            return found
        if retrain == RETRAIN_NEVER:
            raise MissingInputError(f"--retrain never: no usable saved {chosen.name} model; run with --retrain auto")
    keras_model = chosen.build(engine, catalog, train_rows)
    log(f"training the {chosen.name} model on {len(train_rows):,} interactions")
    report = chosen.train(keras_model, train_rows, reporter)
    path, digest = save(keras_model, models_dir)
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
    return SavedModel(keras_model, int(model_id), trained=True)


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
    try:
        return SavedModel(load_model(path), int(row.id), trained=False)
    except Exception as exc:  # a corrupt file must mean retraining, never a crash
        warn(f"saved {name} model {row.id} at {path} cannot be loaded ({type(exc).__name__}); retrained")
        return None


def remove_partial_files(models_dir: Path, log: Log) -> None:
    """A process killed while saving leaves a `.tmp-*` file; it was never recorded, so it is only litter."""
    for partial in models_dir.glob(".tmp-*"):
        partial.unlink(missing_ok=True)
        log(f"removed {partial.name}, a model file a killed run left half-written")
