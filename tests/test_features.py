"""The interaction cache beside the database: written by ingest, equal to the table, ignored when stale."""

import shutil

import numpy as np
import pytest
from sqlalchemy import text

from recgen import features
from recgen.errors import DataError
from recgen.features import Catalog
from recgen.ingest.load import ingest
from recgen.store.cache import interaction_cache_path
from recgen.store.engine import get_engine


@pytest.fixture(scope="module")
def ingested(tmp_path_factory, tiny_sample):
    base = tmp_path_factory.mktemp("cache")
    engine = get_engine(base / "recs.db")
    ingest(engine, tiny_sample)
    engine.dispose()
    return base


@pytest.fixture
def engine(tmp_path, ingested):
    shutil.copytree(ingested, tmp_path, dirs_exist_ok=True)
    engine = get_engine(tmp_path / "recs.db")
    yield engine
    engine.dispose()


def from_table(engine, catalog, table):
    """The straightforward read: the table through SQL, in rowid order."""
    with engine.connect() as conn:
        rows = conn.execute(text(f"SELECT user_id, video_id, watch_ratio FROM {table} ORDER BY rowid")).all()
    users, videos, ratios = (np.array(column) for column in zip(*rows, strict=True))
    return catalog.user_index(users), catalog.video_index(videos), ratios.astype(np.float32)


@pytest.mark.parametrize("table", ["train_interactions", "eval_interactions"])
def test_ingest_writes_a_cache_equal_to_the_table(engine, table):
    path = interaction_cache_path(engine, table)
    assert path.is_file()  # written by ingest from the frames it loaded
    catalog = features.load_catalog(engine)
    cached = features.load_interactions(engine, catalog, table)
    expected = from_table(engine, catalog, table)
    for got, want in zip((cached.users, cached.videos, cached.watch_ratio), expected, strict=True):
        np.testing.assert_array_equal(got, want)
    path.unlink()  # a miss reads the table and writes the cache again
    again = features.load_interactions(engine, catalog, table)
    np.testing.assert_array_equal(again.watch_ratio, expected[2])
    assert path.is_file()


def test_a_cache_from_another_load_is_ignored(engine):
    catalog = features.load_catalog(engine)
    table = "train_interactions"
    path = interaction_cache_path(engine, table)
    features.write_interaction_cache(
        engine, table, {"user_id": np.array([1]), "video_id": np.array([2]), "watch_ratio": np.array([3.0])}
    )  # wrong length for the recorded load: refused
    assert features.read_interaction_cache(engine, table) is not None
    with engine.begin() as conn:  # the table is reloaded: its source_files row changes
        conn.execute(text("UPDATE source_files SET loaded_at = 'later' WHERE table_name = :t"), {"t": table})
    assert features.read_interaction_cache(engine, table) is None
    rows = features.load_interactions(engine, catalog)
    np.testing.assert_array_equal(rows.users, from_table(engine, catalog, table)[0])
    assert features.read_interaction_cache(engine, table) is not None  # refreshed under the new key
    path.write_bytes(b"not a numpy file")
    assert features.read_interaction_cache(engine, table) is None
    assert len(features.load_interactions(engine, catalog)) == len(rows)


def test_no_cache_for_an_in_memory_database():
    assert interaction_cache_path(get_engine("sqlite://"), "train_interactions") is None


@pytest.mark.parametrize("span", [1, 3, 1000])  # dense ids (a lookup table) and sparse ones (a binary search)
def test_catalogue_indexes_are_positions_and_unknown_ids_are_refused(span):
    rng = np.random.default_rng(span)
    ids = np.sort(rng.choice(np.arange(500 * span), size=500, replace=False)).astype(np.int64)
    catalog = Catalog(user_ids=ids, video_ids=ids)
    picked = rng.choice(ids, size=2000)
    assert (catalog.user_index(picked) == np.searchsorted(ids, picked)).all()
    missing = np.setdiff1d(np.arange(-3, 500 * span + 3), ids)[:5]
    with pytest.raises(DataError, match=f"user_id {missing[0]} is not in the catalogue \\(5 unknown ids\\)"):
        catalog.user_index(np.concatenate([picked[:10], missing]))
