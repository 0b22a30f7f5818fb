"""The data-analysis report and the data_profile table, on a database after a real run-batch."""

import re

import pandas as pd
import pytest
from conftest import backup_copy
from sqlalchemy import text

from recgen.errors import MissingInputError
from recgen.report.interactions import THRESHOLDS
from recgen.report.page import SECTIONS
from recgen.report.scans import TABLES, scan
from recgen.report.write import write_data_profile, write_report
from recgen.store.cache import read_interaction_cache
from recgen.store.engine import get_engine, migrate
from recgen.store.schema import data_profile

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def reported(published, tmp_path_factory):
    """(engine, index.html path) after write_report on a copy of the published database."""
    db, _ = published
    work = tmp_path_factory.mktemp("report")
    engine = get_engine(backup_copy(db, work / "recs.db"))
    messages = []
    index = write_report(engine, work / "report", progress=messages.append)
    assert messages and "data_profile rows" in messages[-1]
    return engine, index


def profile(engine) -> dict[tuple[str, str], float]:
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT section, name, value FROM data_profile")).all()
    return {(section, name): value for section, name, value in rows}


def test_report_has_every_section_and_its_charts(reported):
    _, index = reported
    html = index.read_text(encoding="utf-8")
    for section_id, heading in SECTIONS:
        assert f'id="{section_id}"' in html
        assert f"<h2>{heading}</h2>" in html, heading
    images = re.findall(r'<img src="([^"]+)"', html)
    assert len(images) >= 10
    for name in images:
        assert "/" not in name and ":" not in name, name  # relative, beside index.html
        assert (index.parent / name).read_bytes().startswith(PNG_MAGIC), name
    # Self-contained: nothing is fetched from elsewhere.
    assert not re.search(r'(src|href)="(https?:)?//', html)
    assert "<script" not in html


def test_data_profile_matches_the_database(reported):
    engine, _ = reported
    values = profile(engine)
    assert {section for section, _ in values} == {s for s, _ in SECTIONS if s != "summary"} | {"categories"}
    with engine.connect() as conn:
        train_rows, share_2, mean_wr = conn.execute(
            text("SELECT count(*), avg(watch_ratio > 2), avg(watch_ratio) FROM train_interactions")
        ).one()
        eval_users = conn.execute(text("SELECT count(DISTINCT user_id) FROM eval_interactions")).scalar_one()
        missing_time = conn.execute(text("SELECT count(*) - count(time) FROM eval_interactions")).scalar_one()
        dropped = conn.execute(
            text("SELECT rows_in_file - rows FROM source_files WHERE name = 'big_matrix.csv'")
        ).scalar_one()
    assert values[("overview", "train_interactions_rows")] == train_rows
    assert sum(v for (section, _), v in values.items() if section == "categories") == train_rows
    assert values[("overview", "eval_users")] == eval_users
    assert values[("watch_ratio", "share_above_2.train")] == pytest.approx(share_2)
    assert values[("watch_ratio", "mean.train")] == pytest.approx(mean_wr)
    assert values[("quality", "missing.eval_interactions.time")] == missing_time
    assert values[("quality", "dropped.big_matrix.csv")] == dropped
    shares = [values[("watch_ratio", f"share_above_{t:g}.train")] for t in THRESHOLDS]
    assert shares == sorted(shares, reverse=True) and 0 < shares[-1] < shares[0] < 1
    assert 0 < values[("exposure", "gini_rows_per_video")] < 1
    assert 0 < values[("pca", "explained_variance_pc1")] <= 1
    with engine.connect() as conn:
        described = conn.execute(text("SELECT count(*) FROM data_profile WHERE description = ''")).scalar_one()
        units = conn.execute(text("SELECT count(*) FROM data_profile WHERE unit IS NULL")).scalar_one()
    assert described == 0 and units == 0


def test_data_profile_is_replaced_not_appended(reported):
    engine, _ = reported
    before = profile(engine)
    rows = [{"section": s, "name": n, "value": v, "unit": "u", "description": "d"} for (s, n), v in before.items()]
    write_data_profile(engine, rows)  # what every report does at its end
    assert profile(engine) == before
    assert [c.name for c in data_profile.columns] == ["section", "name", "value", "unit", "description"]


def test_report_without_data_is_a_clean_error(tmp_path):
    engine = get_engine(tmp_path / "empty.db")
    migrate(engine)
    with pytest.raises(MissingInputError, match="no videos"):
        write_report(engine, tmp_path / "report")
    assert not (tmp_path / "report" / "index.html").exists()


def test_scans_from_the_interaction_cache_equal_the_sql_scans(published, tmp_path):
    db, _ = published
    cached = get_engine(db)  # run-batch left the interaction caches beside it
    assert all(read_interaction_cache(cached, table) is not None for table in TABLES)
    plain = get_engine(backup_copy(db, tmp_path / "recs.db"))  # a copy of the file alone: no cache, SQL
    assert all(read_interaction_cache(plain, table) is None for table in TABLES)
    from_cache, from_sql = scan(cached), scan(plain)
    for name in ("train_bins", "eval_bins", "train_users", "eval_users"):
        frame = getattr(from_cache, name)
        assert len(frame) > 0, name
        pd.testing.assert_frame_equal(frame, getattr(from_sql, name), check_exact=False, rtol=1e-12)
    assert from_sql.eval_users["null_time"].sum() > 0  # small_matrix has untimed rows: the nulls are compared
