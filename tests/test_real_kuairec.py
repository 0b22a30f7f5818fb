"""The three real KuaiRec files (item_categories, user_features, kuairec_caption_category): their exact counts
through recgen's readers and a whole load, and the generator's headers against theirs.

Every test here requests `real_kuairec_files` (conftest.py): marked `real_kuairec`, found through
RECGEN_KUAIREC_FILES (else ../shared/kuairec), skipped without them. What these tests check that does not
need the real bytes (the quirks, the bad-input policy) runs on handwritten bytes in test_ingest.py.
"""

import io
from pathlib import Path

import pandas as pd
from conftest import REAL_FILES_MD5
from handwritten import (
    BIG_TEXT,
    CAPTION_HEADER,
    ITEM_CATEGORIES_HEADER,
    USER_FEATURES_HEADER,
    exact_duplicates,
    expected_rows,
    write_dataset,
)
from sqlalchemy import text

from recgen.constants import CAPTION_CATEGORY, ITEM_CATEGORIES, USER_FEATURES
from recgen.ingest import locate_data
from recgen.ingest.load import ingest
from recgen.ingest.readers import read_captions, read_item_categories, read_users
from recgen.store.engine import get_engine

FEAT_WITH_NAN = [f"onehot_feat{i}" for i in (4, 12, 13, 14, 15, 16, 17)]  # float64 columns in the real file


def _first_line(path: Path) -> str:
    with open(path, encoding="utf-8", newline="") as f:
        return f.readline()


def test_real_caption_file_parses_to_one_row_per_video(real_kuairec_files):
    raw = (real_kuairec_files / CAPTION_CATEGORY).read_bytes()
    assert len(pd.read_csv(io.BytesIO(raw))) == 10_732  # the trap the README describes: plain pandas splits 4 rows
    captions = read_captions(locate_data(real_kuairec_files)).set_index("video_id")
    assert len(captions) == 10_728
    assert captions.index.tolist() == list(range(10_728))
    assert not captions["caption"].str.contains("\r", regex=False).any()
    assert captions.loc[1378, "caption"].endswith("开启一段王朝！”")
    assert captions.loc[1613, "caption"].endswith("你绕明白了吗？~ ")
    assert captions.loc[5910, "caption"].endswith("说不会就是不会")
    assert captions.loc[6331, "caption"] == "这才是每个小女生心中的豪车！ "
    assert captions.loc[6331, "first_level_category_id"] is pd.NA  # -124 in the file
    assert captions.loc[1378, "first_level_category_id"] == 6
    assert str(captions["first_level_category_id"].dtype) == "Int64"
    nulls = captions.isna().sum()
    assert nulls["first_level_category_id"] == nulls["first_level_category_name"] == 40
    assert nulls["second_level_category_id"] == 3_583
    assert nulls["third_level_category_id"] == 6_832
    assert nulls["manual_cover_text"] == 6_694  # UNKNOWN
    assert nulls["caption"] == 1_355
    assert (captions["topic_tag"] == "[]").sum() == 4_611
    assert captions.loc[4, "topic_tag"] == '["五爱市场","感谢快手我要上热门","搞笑"]'
    assert set(captions["first_level_category_id"].dropna()) == set(range(1, 40)) - {30}


def test_real_item_categories_give_tags_per_video(real_kuairec_files):
    tags, pairs = read_item_categories(locate_data(real_kuairec_files))
    assert len(tags) == 10_728
    assert tags.set_index("video_id").loc[1, "tags"] == "[27, 9]"
    assert pairs.groupby("video_id").size().value_counts().to_dict() == {1: 8_970, 2: 1_562, 3: 185, 4: 11}
    per_tag = pairs["tag_id"].value_counts()
    assert len(pairs) == 12_693
    assert (per_tag[11], per_tag[28], per_tag[29], per_tag[0]) == (2_027, 1_360, 5, 24)


def test_real_user_features_keep_missing_values_missing(real_kuairec_files):
    frame = read_users(locate_data(real_kuairec_files))
    assert len(frame) == 7_176
    assert frame["user_id"].tolist() == list(range(7_176))
    nulls = frame.isna().sum()
    assert [nulls[column] for column in FEAT_WITH_NAN] == [201, 77, 75, 75, 74, 74, 74]
    assert nulls.drop(FEAT_WITH_NAN).to_dict() == {
        **dict.fromkeys(frame.columns.drop(FEAT_WITH_NAN), 0),
        "user_active_degree": 118,  # UNKNOWN
    }
    assert frame["follow_user_num_range"].value_counts()["0"] == 14  # text "0", not a number


def test_real_catalogue_files_load_with_every_row(real_kuairec_files, tmp_path):
    """The real files, linked beside the handwritten interactions, through a whole ingest: nothing set aside."""
    write_dataset(tmp_path / "KuaiRec 2.0" / "data", catalogue_from=real_kuairec_files)
    engine = get_engine(tmp_path / "recs.db")
    result = ingest(engine, tmp_path)
    assert result.rows == {**expected_rows(), "users": 7_176, "videos": 10_728, "video_tags": 12_693}
    assert result.rejected_total == 0 and result.duplicates_dropped == exact_duplicates(BIG_TEXT)
    with engine.connect() as conn:

        def scalar(sql: str):
            return conn.execute(text(sql)).scalar_one()

        assert scalar("SELECT count(*) - count(onehot_feat4) FROM users") == 201
        assert scalar("SELECT count(*) FROM users WHERE user_active_degree IS NULL") == 118
        assert scalar("SELECT count(*) FROM videos WHERE first_level_category_id IS NULL") == 40
        assert scalar("SELECT count(*) FROM videos WHERE manual_cover_text IS NULL") == 6_694
        assert scalar("SELECT count(*) FROM videos WHERE caption LIKE '%' || char(13) || '%'") == 0
        assert scalar("SELECT caption FROM videos WHERE video_id = 6331") == "这才是每个小女生心中的豪车！ "
        assert scalar("SELECT tags FROM videos WHERE video_id = 1") == "[27, 9]"
        assert scalar(f"SELECT size_bytes FROM source_files WHERE name = '{CAPTION_CATEGORY}'") == 1_964_578
    engine.dispose()


def test_stated_and_generated_headers_are_the_real_files_first_lines(real_kuairec_files, tiny_sample):
    data = locate_data(tiny_sample).root
    stated = {
        ITEM_CATEGORIES: ITEM_CATEGORIES_HEADER,
        USER_FEATURES: USER_FEATURES_HEADER,
        CAPTION_CATEGORY: CAPTION_HEADER,
    }
    assert set(stated) == set(REAL_FILES_MD5)
    for name, header in stated.items():
        real = _first_line(real_kuairec_files / name)
        assert real == header + "\n", name  # the headers test_sample.py and test_ingest.py state are the real ones
        assert _first_line(data / name) == real, name


def test_generated_user_activity_degrees_are_real_ones(real_kuairec_files, tiny_sample):
    generated = pd.read_csv(locate_data(tiny_sample).root / USER_FEATURES)
    real = pd.read_csv(real_kuairec_files / USER_FEATURES)
    assert list(generated.columns) == list(real.columns)
    assert set(generated.user_active_degree) <= set(real.user_active_degree)
