"""Ingest: the real quirky files, an end-to-end load of a tiny dataset in the exact real format, change
detection, the zip, and bad input that must leave the previous load intact."""

import json
import shutil
import zipfile
from pathlib import Path

import pandas as pd
import pytest
from conftest import REAL_KUAIREC
from sqlalchemy import inspect, text

from recgen.constants import (
    BIG_MATRIX,
    CAPTION_CATEGORY,
    ITEM_CATEGORIES,
    ITEM_DAILY_FEATURES,
    KUAIREC_FILES,
    SMALL_MATRIX,
    SOCIAL_NETWORK,
    USER_FEATURES,
)
from recgen.errors import DataError, MissingInputError
from recgen.ingest.load import data_fingerprint, ingest, locate_data
from recgen.ingest.readers import drop_exact_duplicates, read_captions, read_item_categories, read_users
from recgen.store.engine import get_engine
from recgen.store.schema import DAILY_COLUMNS, INPUT_TABLES

REAL = REAL_KUAIREC  # read where it is, never copied
REAL_FILES = (ITEM_CATEGORIES, USER_FEATURES, CAPTION_CATEGORY)
pytestmark = pytest.mark.skipif(not (REAL / CAPTION_CATEGORY).exists(), reason=f"real KuaiRec files not in {REAL}")

# Handwritten files in the exact real text format (SPEC §§1-4, 7): exact duplicates (rows 3 and 12 of the
# data), a re-watch (8228), the same event filed under two dates (2783/9534, kept: not an exact duplicate),
# trimmed millisecond fractions, `20200705.0` dates and empty time fields, quoted lists.
BIG_TEXT = """\
user_id,video_id,play_duration,video_duration,time,date,timestamp,watch_ratio
0,3649,13838,10867,2020-07-05 00:08:23.438,20200705,1593878903.438,1.2733965215790926
0,9598,13665,10984,2020-07-05 00:13:41.297,20200705,1593879221.297,1.2440823015294975
0,9598,13665,10984,2020-07-05 00:13:41.297,20200705,1593879221.297,1.2440823015294975
0,8234,858,11000,2020-07-05 00:43:05.128,20200705,1593880985.128,0.078
0,8228,13484,8576,2020-07-05 01:00:25.5,20200705,1593882025.5,1.572294776119403
0,8228,6455,8576,2020-07-05 01:00:36.995,20200705,1593882036.995,0.7526819029850746
1,1,5000,9000,2020-08-01 10:00:00.1,20200801,1596247200.1,0.5555555555555556
2,1,7000,9002,2020-08-01 10:00:01.25,20200801,1596247201.25,0.7776049766718507
2783,9534,1000,10000,2020-06-23 08:34:11.373,20200706,1592872451.373,0.1
2783,9534,1000,10000,2020-06-23 08:34:11.373,20200707,1592872451.373,0.1
7175,10389,12263,14304,2020-09-05 21:13:51.419,20200905,1599311631.419,0.8573126398210291
7175,10389,12263,14304,2020-09-05 21:13:51.419,20200905,1599311631.419,0.8573126398210291
"""
SMALL_TEXT = """\
user_id,video_id,play_duration,video_duration,time,date,timestamp,watch_ratio
14,148,4381,6067,2020-07-05 05:27:48.378,20200705.0,1593898068.378,0.7221031811438932
14,183,11635,6100,2020-07-05 05:28:00.057,20200705.0,1593898080.057,1.907377049180328
14,3649,22422,10867,2020-07-05 05:29:09.479,20200705.0,1593898149.479,2.063310941382166
7162,2267,11908,5467,,,,2.1781598683007135
7162,2065,11919,6067,,,,1.9645623866820505
7162,4364,2182,19367,,,,0.11266587494191149
"""
SOCIAL_TEXT = """\
user_id,friend_list
3371,[2975]
24,[2665]
5352,"[4202, 7126]"
5250,"[1, 2, 3, 4, 5]"
"""
_COUNTERS_0705 = (
    "14665,11372,10141,7485,88729488,5657,4834,5503,4775,5503,4775,1939,1481,0.799860,6629173,573,569,315,257,87,85,"
    "11,11,8,3,0,0,112,61,284,284,0,0,2,2,8,8,0,0,3,3"
)
DAILY_ROWS = [
    f"0,20200705,3309,NORMAL,2020-03-30,ShortImport,public,5966.0,720,1280,3350323409,841,建筑,{_COUNTERS_0705},,,,",
    f"0,20200706,3309,NORMAL,2020-03-30,ShortImport,public,5966.0,720,1280,3350323409,841,建筑,{_COUNTERS_0705},,,,",
    f"0,20200728,3309,NORMAL,2020-03-30,ShortImport,public,5967.0,720,1280,3350323409,841,建筑,{_COUNTERS_0705},2.0,2.0,0.0,0.0",
    # Video 1: no duration on any day, no platform tag (0, empty name), and an AD on its latest day.
    f"1,20200801,77,NORMAL,2020-07-30,Web,public,,576,1024,12,0,,{_COUNTERS_0705},5,4,0,0",
    f"1,20200802,77,AD,2020-07-30,Web,public,,576,1024,12,0,,{_COUNTERS_0705},6,5,1,1",
    f"10727,20200905,99,NORMAL,2020-09-05,ShortCamera,public,5666.0,720,1556,3,2624,正面,{_COUNTERS_0705},,,,",
]
EXPECTED_ROWS = {
    "users": 7176,
    "videos": 10728,
    "video_tags": 12693,
    "video_daily": 6,
    "train_interactions": 10,
    "eval_interactions": 6,
    "friendships": 9,
}


def write_dataset(folder: Path) -> Path:
    """The three real files plus the four handwritten ones, in `folder`; returns `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in REAL_FILES:
        shutil.copyfile(REAL / name, folder / name)
    (folder / BIG_MATRIX).write_text(BIG_TEXT)
    (folder / SMALL_MATRIX).write_text(SMALL_TEXT)
    (folder / SOCIAL_NETWORK).write_text(SOCIAL_TEXT)
    (folder / ITEM_DAILY_FEATURES).write_text(",".join(DAILY_COLUMNS) + "\n" + "\n".join(DAILY_ROWS) + "\n")
    return folder


def snapshot(engine, *, with_provenance: bool = True) -> dict[str, list[tuple]]:
    """Every row of every input table (and source_files), sorted: equal snapshots mean equal databases."""
    columns = "*" if with_provenance else "name, sha256, size_bytes, rows, rows_in_file, table_name"
    with engine.connect() as conn:
        tables = {name: sorted(conn.execute(text(f"SELECT * FROM {name}")).all(), key=repr) for name in INPUT_TABLES}
        tables["source_files"] = sorted(conn.execute(text(f"SELECT {columns} FROM source_files")).all())
    return tables


def scalar(engine, sql: str):
    with engine.connect() as conn:
        return conn.execute(text(sql)).scalar_one()


@pytest.fixture(scope="session")
def first_load(tmp_path_factory):
    """One ingest of the tiny dataset, shared: each test gets a copy of its folder and database."""
    base = tmp_path_factory.mktemp("first_load")
    write_dataset(base / "KuaiRec 2.0" / "data")
    engine = get_engine(base / "recs.db")
    result = ingest(engine, base)
    engine.dispose()  # closes the last connection: SQLite checkpoints the WAL into recs.db
    return base, result


@pytest.fixture
def loaded(tmp_path, first_load):
    """A database after one successful ingest: (engine, its data folder, the ingest's result)."""
    base, result = first_load
    shutil.copytree(base, tmp_path, dirs_exist_ok=True)
    engine = get_engine(tmp_path / "recs.db")
    yield engine, tmp_path / "KuaiRec 2.0" / "data", result
    engine.dispose()


# ---------------------------------------------------------------- the real files


def test_real_caption_file_parses_to_one_row_per_video():
    captions = read_captions(locate_data(REAL)).set_index("video_id")
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


def test_real_item_categories_give_tags_per_video():
    tags, pairs = read_item_categories(locate_data(REAL))
    assert len(tags) == 10_728
    assert tags.set_index("video_id").loc[1, "tags"] == "[27, 9]"
    assert pairs.groupby("video_id").size().value_counts().to_dict() == {1: 8_970, 2: 1_562, 3: 185, 4: 11}
    per_tag = pairs["tag_id"].value_counts()
    assert len(pairs) == 12_693
    assert (per_tag[11], per_tag[28], per_tag[29], per_tag[0]) == (2_027, 1_360, 5, 24)


def test_real_user_features_keep_missing_values_missing():
    frame = read_users(locate_data(REAL))
    assert len(frame) == 7_176
    assert frame["user_id"].tolist() == list(range(7_176))
    nulls = frame.isna().sum()
    assert [nulls[f"onehot_feat{i}"] for i in (4, 12, 13, 14, 15, 16, 17)] == [201, 77, 75, 75, 74, 74, 74]
    assert nulls.drop([f"onehot_feat{i}" for i in (4, 12, 13, 14, 15, 16, 17)]).to_dict() == {
        **dict.fromkeys(frame.columns.drop([f"onehot_feat{i}" for i in (4, 12, 13, 14, 15, 16, 17)]), 0),
        "user_active_degree": 118,  # UNKNOWN
    }
    assert frame["follow_user_num_range"].value_counts()["0"] == 14  # text "0", not a number


# ---------------------------------------------------------------- end to end


def test_ingest_loads_every_table(loaded):
    engine, dataset, result = loaded
    assert result.rows == EXPECTED_ROWS
    assert result.loaded == list(KUAIREC_FILES) and result.skipped == []
    assert result.duplicates_dropped == 2
    assert Path(result.source).parts[-2:] == ("KuaiRec 2.0", "data")
    assert result.fingerprint == data_fingerprint(engine)
    assert len(result.fingerprint) == 64
    # users: NaN stays NULL, UNKNOWN -> NULL
    assert scalar(engine, "SELECT count(*) - count(onehot_feat4) FROM users") == 201
    assert scalar(engine, "SELECT count(*) FROM users WHERE user_active_degree IS NULL") == 118
    # interactions: re-watches and same-event-other-date kept, empty time/date/timestamp -> NULL
    assert scalar(engine, "SELECT count(*) FROM train_interactions WHERE video_id = 8228") == 2
    assert scalar(engine, "SELECT count(*) FROM train_interactions WHERE video_id = 9534") == 2
    assert scalar(engine, "SELECT time FROM train_interactions WHERE video_id = 8228 AND play_duration = 13484") == (
        "2020-07-05 01:00:25.5"
    )
    assert scalar(engine, "SELECT count(*) FROM eval_interactions WHERE time IS NULL AND date IS NULL") == 3
    assert scalar(engine, "SELECT typeof(date) FROM eval_interactions WHERE video_id = 148") == "integer"
    assert scalar(engine, "SELECT date FROM eval_interactions WHERE video_id = 148") == 20200705
    # videos: latest daily row, median durations, interaction fallback, NULL markers
    video = pd.read_sql("SELECT * FROM videos", engine).set_index("video_id")
    assert video.loc[
        0, ["author_id", "video_duration", "video_tag_id", "video_tag_name", "tags", "music_id"]
    ].tolist() == [
        3309,
        5966.0,
        841,
        "建筑",
        "[8]",
        3350323409,
    ]
    assert video.loc[1, ["video_type", "video_duration", "tags"]].tolist() == ["AD", 9001.0, "[27, 9]"]
    assert pd.isna(video.loc[1, "video_tag_id"]) and pd.isna(video.loc[1, "video_tag_name"])
    assert pd.isna(video.loc[2, "author_id"]) and pd.isna(video.loc[2, "video_duration"])
    assert video.loc[10727, "upload_type"] == "ShortCamera"
    assert pd.isna(video.loc[6331, "first_level_category_id"]) and pd.isna(video.loc[0, "manual_cover_text"])
    # daily: every column, NaN -> NULL, float text of integer columns -> integers
    assert scalar(engine, "SELECT count(*) FROM video_daily WHERE collect_cnt IS NULL") == 3
    assert scalar(engine, "SELECT typeof(collect_cnt) FROM video_daily WHERE date = 20200728") == "integer"
    assert scalar(engine, "SELECT count(*) FROM video_daily WHERE video_duration IS NULL") == 2
    assert scalar(engine, "SELECT count(*) FROM friendships WHERE user_id = 5250") == 5
    files = pd.read_sql("SELECT * FROM source_files", engine).set_index("name")
    assert files.loc[BIG_MATRIX, ["rows", "rows_in_file", "table_name"]].tolist() == [10, 12, "train_interactions"]
    assert files.loc[SOCIAL_NETWORK, ["rows", "rows_in_file"]].tolist() == [9, 4]
    assert files.loc[CAPTION_CATEGORY, "size_bytes"] == 1_964_578
    # the secondary indexes dropped for the bulk load are back
    assert {ix["name"] for ix in inspect(engine).get_indexes("train_interactions")} == {
        "ix_train_interactions_user_id",
        "ix_train_interactions_video_id",
    }


def test_zip_with_the_official_prefix_loads_identically(loaded, tmp_path):
    engine, dataset, _ = loaded
    archive = tmp_path / "KuaiRec.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("KuaiRec 2.0/LICENSE", "CC BY-SA 4.0\n")
        for name in KUAIREC_FILES:
            zf.write(dataset / name, f"KuaiRec 2.0/data/{name}")
    zipped = get_engine(tmp_path / "zipped.db")
    messages: list[str] = []
    result = ingest(zipped, archive, progress=messages.append)
    assert result.source == str(archive)
    assert result.rows == EXPECTED_ROWS
    assert result.fingerprint == data_fingerprint(engine)
    assert snapshot(zipped, with_provenance=False) == snapshot(engine, with_provenance=False)
    assert scalar(zipped, f"SELECT path FROM source_files WHERE name = '{BIG_MATRIX}'") == (
        f"{archive}::KuaiRec 2.0/data/{BIG_MATRIX}"
    )
    assert f"{BIG_MATRIX}: 12 rows, 2 duplicates dropped," in "\n".join(messages)
    zipped.dispose()


def test_crlf_files_with_a_bom_load_identically(loaded, tmp_path):
    """SPEC §0.4 infers LF endings for the zip members; a CRLF or BOM copy must load the same rows."""
    engine, dataset, _ = loaded
    windows = tmp_path / "windows"
    windows.mkdir()
    for name in KUAIREC_FILES:
        (windows / name).write_bytes(b"\xef\xbb\xbf" + (dataset / name).read_bytes().replace(b"\n", b"\r\n"))
    other = get_engine(tmp_path / "windows.db")
    assert ingest(other, windows).rows == EXPECTED_ROWS
    tables = snapshot(other)
    assert {k: v for k, v in tables.items() if k != "source_files"} == {
        k: v for k, v in snapshot(engine).items() if k != "source_files"
    }
    other.dispose()


def test_second_ingest_skips_every_file(loaded, tmp_path):
    engine, _, first = loaded
    before = snapshot(engine)
    again = ingest(engine, tmp_path)
    assert again.loaded == [] and again.skipped == list(KUAIREC_FILES)
    assert again.duplicates_dropped == 0
    assert again.rows == first.rows and again.fingerprint == first.fingerprint
    assert snapshot(engine) == before  # loaded_at included: nothing was rewritten


def test_force_reloads_every_file(loaded, tmp_path):
    engine, _, _ = loaded
    result = ingest(engine, tmp_path, force=True)
    assert result.loaded == list(KUAIREC_FILES) and result.rows == EXPECTED_ROWS
    assert result.duplicates_dropped == 2


def test_changing_one_file_reloads_only_it(loaded, tmp_path):
    engine, dataset, first = loaded
    with open(dataset / SOCIAL_NETWORK, "a") as f:
        f.write("7087,[7117]\n")
    result = ingest(engine, tmp_path)
    assert result.loaded == [SOCIAL_NETWORK]
    assert result.rows == {**EXPECTED_ROWS, "friendships": 10}
    assert result.fingerprint == data_fingerprint(engine) != first.fingerprint


def test_a_file_changed_in_place_at_the_same_size_is_reloaded(loaded, tmp_path):
    """Change detection goes by the bytes' hash, not by size or time: an edit that keeps the size is seen."""
    engine, dataset, first = loaded
    raw = (dataset / SOCIAL_NETWORK).read_bytes()
    (dataset / SOCIAL_NETWORK).write_bytes(raw.replace(b"[2975]", b"[2976]"))
    result = ingest(engine, tmp_path)
    assert result.loaded == [SOCIAL_NETWORK]
    assert scalar(engine, "SELECT friend_id FROM friendships WHERE user_id = 3371") == 2976
    assert result.fingerprint == data_fingerprint(engine) != first.fingerprint


def test_changing_the_caption_file_rebuilds_videos(loaded, tmp_path):
    engine, dataset, _ = loaded
    raw = (dataset / CAPTION_CATEGORY).read_bytes()
    (dataset / CAPTION_CATEGORY).write_bytes(raw.replace("精神小伙路难走".encode(), "精神小伙".encode(), 1))
    result = ingest(engine, tmp_path)
    assert result.loaded == [CAPTION_CATEGORY]
    assert scalar(engine, "SELECT caption FROM videos WHERE video_id = 0").startswith("精神小伙 程哥")
    assert scalar(engine, "SELECT author_id FROM videos WHERE video_id = 0") == 3309  # from the unchanged daily file
    assert scalar(engine, "SELECT video_duration FROM videos WHERE video_id = 1") == 9001.0
    assert result.rows == EXPECTED_ROWS


# ---------------------------------------------------------------- bad input leaves the previous load intact


def _replace_line(path: Path, number: int, new: str) -> None:
    lines = path.read_text().splitlines()
    lines[number - 1] = new
    path.write_text("\n".join(lines) + "\n")


def _zip_dataset(d: Path, layout: str) -> None:
    """Replace the data folder's files by KuaiRec.zip (beside `KuaiRec 2.0/`) holding them under `layout`."""
    with zipfile.ZipFile(d.parents[1] / "KuaiRec.zip", "w") as archive:
        for name in KUAIREC_FILES:
            archive.write(d / name, f"{layout}/{name}")
            (d / name).unlink()


def _corrupt_zip(d: Path) -> None:
    _zip_dataset(d, "KuaiRec 2.0/data")
    raw = bytearray((d.parents[1] / "KuaiRec.zip").read_bytes())
    raw[len(raw) // 3 : len(raw) // 3 + 64] = bytes(64)  # zeroed bytes inside a compressed member
    (d.parents[1] / "KuaiRec.zip").write_bytes(bytes(raw))


def _truncated_zip(d: Path) -> None:
    _zip_dataset(d, "KuaiRec 2.0/data")
    archive = d.parents[1] / "KuaiRec.zip"
    archive.write_bytes(archive.read_bytes()[: archive.stat().st_size // 2])  # an interrupted copy
    shutil.rmtree(d.parent)  # only the zip is left to read


# Refused as a whole: the file cannot be read as the format it should be in.
BAD_FILES = {
    "missing file": (lambda d: (d / SOCIAL_NETWORK).unlink(), MissingInputError, f"{SOCIAL_NETWORK} not found in"),
    "renamed column": (
        lambda d: (d / BIG_MATRIX).write_text(BIG_TEXT.replace(",watch_ratio\n", ",watchratio\n", 1)),
        DataError,
        f"{BIG_MATRIX}: missing column watch_ratio; unexpected: watchratio",
    ),
    "row with too many fields": (
        lambda d: _replace_line(d / SMALL_MATRIX, 5, "7162,2267,11908,5467,,,,2.17,9"),
        DataError,
        f"{SMALL_MATRIX}: line 5: Expected 8 columns, got 9",
    ),
    "truncated mid-row": (
        lambda d: (d / SMALL_MATRIX).write_text(SMALL_TEXT + "7162,43"),
        DataError,
        f"{SMALL_MATRIX}: line 8: Expected 8 columns, got 2: 7162,43 (a line with missing or extra fields: is the file "
        "truncated",
    ),
    "not UTF-8": (
        lambda d: (d / SMALL_MATRIX).write_bytes(
            SMALL_TEXT.encode() + "7162,43,1,1,2020-07-05 \xe9t\xe9,,,1\n".encode("latin-1")
        ),
        DataError,
        f"{SMALL_MATRIX}: not UTF-8 text",
    ),
    "empty file": (lambda d: (d / SMALL_MATRIX).write_text(""), DataError, f"{SMALL_MATRIX}: empty file"),
    "header only": (
        lambda d: (d / SMALL_MATRIX).write_text(SMALL_TEXT.splitlines()[0] + "\n"),
        DataError,
        f"{SMALL_MATRIX}: no data rows",
    ),
    "bad list": (
        lambda d: (d / SOCIAL_NETWORK).write_text(SOCIAL_TEXT + "1,[1;2]\n"),
        DataError,
        f"{SOCIAL_NETWORK}: column friend_list, line 6: '[1;2]' is not a list of integers",
    ),
    "bad daily count": (
        lambda d: (d / ITEM_DAILY_FEATURES).write_text(
            (d / ITEM_DAILY_FEATURES).read_text().replace(",5,4,0,0\n", ",5.5,4,0,0\n")
        ),
        DataError,
        f"{ITEM_DAILY_FEATURES}: column collect_cnt, line 5: 5.5 is not an integer",
    ),
    "corrupt zip": (_corrupt_zip, DataError, "KuaiRec.zip: corrupt zip, "),
    "truncated zip": (_truncated_zip, DataError, "KuaiRec.zip is a file but not a readable zip"),
    "zip with another layout": (
        lambda d: _zip_dataset(d, "KuaiRec 2.0/csvs"),
        MissingInputError,
        "no KuaiRec CSV in",
    ),
}


@pytest.mark.parametrize("case", BAD_FILES)
def test_a_bad_file_raises_one_clear_line_and_keeps_the_previous_load(loaded, tmp_path, case):
    engine, dataset, first = loaded
    before = snapshot(engine)
    # Valid changes to files loaded before the bad one: a partial load would show them.
    (dataset / USER_FEATURES).write_bytes(
        (dataset / USER_FEATURES).read_bytes().replace(b"\n1,full_active", b"\n1,high_active", 1)
    )
    if case != "renamed column":
        with open(dataset / BIG_MATRIX, "a") as f:
            f.write("5,5,100,1000,2020-07-06 00:00:01.5,20200706,1593964801.5,0.1\n")
    corrupt, error, message = BAD_FILES[case]
    corrupt(dataset)
    with pytest.raises(error) as caught:
        ingest(engine, tmp_path)
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)
    assert snapshot(engine) == before
    assert data_fingerprint(engine) == first.fingerprint
    assert len(inspect(engine).get_indexes("train_interactions")) == 2


# Set aside: the row is wrong, the file is fine. (file, line to write or append, column, value, reason)
BAD_ROWS = {
    "non-numeric watch_ratio": (SMALL_MATRIX, "14,183,11635,6100,,,,n/a", "watch_ratio", "n/a", "is not a number"),
    "NaN watch_ratio": (SMALL_MATRIX, "14,183,11635,6100,,,,nan", "watch_ratio", None, "is missing"),
    "missing watch_ratio": (SMALL_MATRIX, "14,183,11635,6100,,,,", "watch_ratio", None, "is missing"),
    "infinite watch_ratio": (SMALL_MATRIX, "14,183,11635,6100,,,,inf", "watch_ratio", "inf", "out of range"),
    "negative watch_ratio": (BIG_MATRIX, "1,0,5000,9000,,,,-0.5", "watch_ratio", "-0.5", "out of range"),
    "negative duration": (BIG_MATRIX, "1,0,-5000,9000,,,,0.5", "play_duration", "-5000", "out of range"),
    "zero video duration": (BIG_MATRIX, "1,0,5000,0,,,,0.5", "video_duration", "0", "out of range"),
    "non-numeric id": (BIG_MATRIX, "x1,0,5000,9000,,,,0.5", "user_id", "x1", "is not a number"),
    "fraction in an id": (SMALL_MATRIX, "14,3649.5,22422,10867,,,,2.0", "video_id", "3649.5", "is not an integer"),
    "unknown video": (BIG_MATRIX, "1,99999,5000,9000,,,,0.5", "video_id", "99999", "video_id is not in videos"),
    "unknown user": (SMALL_MATRIX, "99999,183,11635,6100,,,,1.5", "user_id", "99999", "user_id is not in users"),
    "duplicate small pair": (SMALL_MATRIX, "14,183,1,6100,,,,0.0002", None, None, "pair repeats an earlier line"),
    "small pair in big": (BIG_MATRIX, "14,148,1,6067,,,,0.5", None, None, f"pair is in {SMALL_MATRIX}"),
}


@pytest.mark.parametrize("case", BAD_ROWS)
def test_a_bad_row_is_set_aside_with_its_line_or_refuses_the_load_past_the_threshold(loaded, tmp_path, case):
    engine, dataset, first = loaded
    name, line, column, value, reason = BAD_ROWS[case]
    before = snapshot(engine)
    with open(dataset / name, "a") as f:
        f.write(line + "\n")
    line_number = len((dataset / name).read_text().splitlines())

    # One bad row in a handwritten file of a few rows is far above the default 1%: the load is refused.
    with pytest.raises(DataError) as caught:
        ingest(engine, tmp_path)
    assert f"{name}: 1 of " in str(caught.value) and f"first: line {line_number}, " in str(caught.value)
    assert reason in str(caught.value) and "--max-rejected" in str(caught.value)
    assert snapshot(engine) == before and data_fingerprint(engine) == first.fingerprint

    result = ingest(engine, tmp_path, max_rejected=0.5)

    assert result.rejected == {name: 1} and result.rejected_total == 1
    with engine.connect() as conn:
        rows = conn.execute(text('SELECT file, line, "column", value, reason FROM rejected_rows')).all()
    assert len(rows) == 1
    assert rows[0][:4] == (name, line_number, column, value) and reason in rows[0][4]
    table = "eval_interactions" if name == SMALL_MATRIX else "train_interactions"
    assert result.rows[table] == EXPECTED_ROWS[table]  # every good row, the bad one left out


def test_a_fixed_file_clears_its_rejected_rows(loaded, tmp_path):
    engine, dataset, _ = loaded
    good = (dataset / BIG_MATRIX).read_text()
    with open(dataset / BIG_MATRIX, "a") as f:
        f.write("1,0,5000,9000,,,,-0.5\n")
    assert ingest(engine, tmp_path, max_rejected=0.5).rejected_total == 1
    (dataset / BIG_MATRIX).write_text(good)
    result = ingest(engine, tmp_path)
    assert result.rejected_total == 0 and result.loaded == [BIG_MATRIX]


# ---------------------------------------------------------------- small pieces


@pytest.mark.parametrize("layout", ["KuaiRec 2.0/data", "KuaiRec/data", "data", ""])
def test_locate_data_finds_every_layout(tmp_path, layout):
    folder = tmp_path / layout if layout else tmp_path
    folder.mkdir(parents=True, exist_ok=True)
    (folder / BIG_MATRIX).write_text(BIG_TEXT)
    assert locate_data(tmp_path).root == folder


def test_locate_data_reads_a_zip_in_place(tmp_path):
    with zipfile.ZipFile(tmp_path / "KuaiRec.zip", "w") as zf:
        zf.writestr(f"KuaiRec 2.0/data/{BIG_MATRIX}", BIG_TEXT)
    for source in (tmp_path, tmp_path / "KuaiRec.zip"):  # the zip, or a folder holding only the zip
        found = locate_data(source)
        assert (found.root, found.folder, found.is_zip) == (tmp_path / "KuaiRec.zip", "KuaiRec 2.0/data/", True)
    assert list(tmp_path.iterdir()) == [tmp_path / "KuaiRec.zip"]  # nothing extracted
    with pytest.raises(
        MissingInputError, match=f"{SOCIAL_NETWORK}, {SMALL_MATRIX} not found in .*KuaiRec.zip::KuaiRec 2.0/data$"
    ):
        found.require_all()


def test_locate_data_names_what_it_searched(tmp_path):
    with pytest.raises(MissingInputError, match="searched .*KuaiRec 2.0/data.*KuaiRec.zip"):
        locate_data(tmp_path)
    with pytest.raises(MissingInputError, match="does not exist"):
        locate_data(tmp_path / "nowhere")


def test_drop_exact_duplicates_keeps_rewatches_and_first_occurrences():
    frame = pd.DataFrame(
        {"user_id": [1, 1, 1, 1], "video_id": [5, 5, 5, 5], "time": ["a", "b", "a", "a"], "watch_ratio": [0.5] * 4}
    )
    kept, dropped = drop_exact_duplicates(frame)
    assert dropped == 2
    assert kept["time"].tolist() == ["a", "b"]


def test_generated_sample_ingests_with_matching_counts(tmp_path, tiny_sample):
    folder = locate_data(tiny_sample).root
    engine = get_engine(tmp_path / "sample.db")
    result = ingest(engine, tiny_sample)
    engine.dispose()

    def csv(name: str) -> pd.DataFrame:
        return pd.read_csv(folder / name, lineterminator="\n", keep_default_na=False, na_values=[""])

    big, social, categories = csv(BIG_MATRIX), csv(SOCIAL_NETWORK), csv(ITEM_CATEGORIES)
    video_ids = set(categories["video_id"]) | set(csv(CAPTION_CATEGORY)["video_id"])
    friends = social.assign(friend_id=social["friend_list"].map(json.loads)).explode("friend_id")
    assert result.duplicates_dropped == big.duplicated().sum() > 0
    assert result.rows == {
        "users": len(csv(USER_FEATURES)),
        "videos": len(video_ids | set(csv(ITEM_DAILY_FEATURES)["video_id"])),
        "video_tags": categories["feat"].map(lambda text: len(json.loads(text))).sum(),
        "video_daily": len(csv(ITEM_DAILY_FEATURES)),
        "train_interactions": len(big) - big.duplicated().sum(),
        "eval_interactions": len(csv(SMALL_MATRIX)),
        "friendships": len(friends.drop_duplicates(["user_id", "friend_id"])),
    }
    assert len(video_ids) == result.rows["videos"]
