"""Ingest: an end-to-end load of a tiny handwritten dataset in the exact real format and its quirks, change
detection, the zip, and bad input that must leave the previous load intact.

Every test here runs on bytes the project writes (tests/handwritten.py, or the generator's sample), never on
the real KuaiRec files: their exact counts are checked in test_real_kuairec.py.
"""

import io
import json
import shutil
import zipfile
from pathlib import Path

import pandas as pd
import pytest
from handwritten import (
    BIG_TEXT,
    CAPTION_ROWS,
    CAPTION_TEXT,
    CR_QUOTED,
    CR_UNQUOTED,
    SMALL_TEXT,
    SOCIAL_TEXT,
    USER_TEXT,
    exact_duplicates,
    expected_rows,
    rows,
    write_dataset,
)
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
from recgen.ingest import locate_data
from recgen.ingest.dedup import exact_duplicates as duplicate_rows
from recgen.ingest.dedup import keep_rows
from recgen.ingest.load import data_fingerprint, ingest
from recgen.ingest.readers import read_captions, read_users
from recgen.store.engine import get_engine
from recgen.store.schema import INPUT_TABLES

EXPECTED_ROWS = expected_rows()  # counted from the handwritten text with the csv module, not by recgen


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


# ---------------------------------------------------------------- the quirks of the real format


def _caption_id(row: str) -> int:
    return int(row.split(",", 1)[0])


def test_captions_with_a_bare_carriage_return_keep_one_row_per_video(tmp_path):
    raw = CAPTION_TEXT.encode()
    by_id = {_caption_id(row): row for row in CAPTION_ROWS}
    assert all("\r" in by_id[video] for video in CR_UNQUOTED + CR_QUOTED)
    # The trap is in these bytes: plain pandas splits each row with an unquoted \r in two.
    assert len(pd.read_csv(io.BytesIO(raw))) == len(CAPTION_ROWS) + len(CR_UNQUOTED)
    captions = read_captions(locate_data(write_dataset(tmp_path))).set_index("video_id")
    assert captions.index.tolist() == [_caption_id(row) for row in CAPTION_ROWS]
    assert not captions["caption"].str.contains("\r", regex=False).any()
    assert captions.loc[1378, "caption"] == "教练说：“我们要开始一段新的旅程！”"
    assert captions.loc[5910, "caption"] == "答应你的事就一定做到"
    assert captions.loc[6331, "caption"] == "这辆车终于开回家了！ "
    assert captions.loc[148, "caption"] == "早安,打工人加油"  # quoted: the comma is text
    assert captions.loc[183, "caption"] == '他说"明天见"就走了'
    assert captions.loc[4364, "caption"] == "NA" and pd.isna(captions.loc[2065, "caption"])  # only empty is NULL
    assert captions.loc[1378, "first_level_category_id"] == 6  # the fields after the \r stay in their row
    assert captions.loc[1378, "first_level_category_name"] == "明星娱乐"
    assert captions.loc[2267, "topic_tag"] == '["周末","旅行","爬山"]'
    assert "\xa0" in captions.loc[2267, "caption"]
    assert str(captions["first_level_category_id"].dtype) == "Int64"
    # UNKNOWN and -124 are NULL, counted from the text.
    text_rows = rows(CAPTION_TEXT)
    assert captions["manual_cover_text"].isna().sum() == sum(r["manual_cover_text"] == "UNKNOWN" for r in text_rows)
    for level in ("first", "second", "third"):
        unknown = sum(r[f"{level}_level_category_id"] == "-124" for r in text_rows)
        assert 0 < unknown == captions[f"{level}_level_category_id"].isna().sum(), level
        assert captions[f"{level}_level_category_name"].isna().sum() == unknown, level
    assert captions.loc[6331, ["first_level_category_id", "first_level_category_name"]].isna().all()


def test_generated_captions_read_row_for_row_without_the_carriage_returns(tiny_sample):
    data = locate_data(tiny_sample)
    raw = (data.root / CAPTION_CATEGORY).read_bytes()
    # The known fix for plain pandas, as the reference: only \n ends a line.
    reference = pd.read_csv(io.BytesIO(raw), lineterminator="\n", dtype=str, keep_default_na=False)
    assert len(pd.read_csv(io.BytesIO(raw))) > len(reference)  # the generator reproduces the trap
    assert reference["caption"].str.contains("\r", regex=False).sum() == raw.count(b"\r") > 0
    captions = read_captions(data)
    assert captions["video_id"].tolist() == reference["video_id"].astype(int).tolist()
    assert captions["caption"].fillna("").tolist() == reference["caption"].str.replace("\r", "").tolist()
    assert captions["manual_cover_text"].isna().tolist() == (reference["manual_cover_text"] == "UNKNOWN").tolist()
    unknown = reference["first_level_category_id"] == "-124"
    assert unknown.any() and captions["first_level_category_id"].isna().tolist() == unknown.tolist()


def test_user_features_keep_missing_values_missing(tmp_path):
    frame = read_users(locate_data(write_dataset(tmp_path))).set_index("user_id")
    by_id = {int(r["user_id"]): r for r in rows(USER_TEXT)}
    assert frame.index.tolist() == list(by_id)
    for column in frame.columns:  # NULL exactly where the field is empty, or UNKNOWN for the activity degree
        marker = "UNKNOWN" if column == "user_active_degree" else ""
        empty = [by_id[u][column] in ("", marker) for u in by_id]
        assert frame[column].isna().tolist() == empty, column
    assert frame["onehot_feat4"].isna().sum() == 3 and str(frame["onehot_feat4"].dtype) == "Int64"
    assert frame.loc[2, "follow_user_num_range"] == "0"  # text "0", not a number
    assert frame.loc[7162, ["fans_user_num", "onehot_feat3"]].tolist() == [11401, 1075]


# ---------------------------------------------------------------- end to end


def test_ingest_loads_every_table(loaded):
    engine, dataset, result = loaded
    assert result.rows == EXPECTED_ROWS
    assert result.loaded == list(KUAIREC_FILES) and result.skipped == []
    assert result.duplicates_dropped == exact_duplicates(BIG_TEXT) == 2
    assert result.rejected_total == 0
    assert Path(result.source).parts[-2:] == ("KuaiRec 2.0", "data")
    assert result.fingerprint == data_fingerprint(engine)
    assert len(result.fingerprint) == 64
    # users: NaN stays NULL, UNKNOWN -> NULL, range text stays text
    users = rows(USER_TEXT)
    assert scalar(engine, "SELECT count(*) - count(onehot_feat4) FROM users") == sum(
        r["onehot_feat4"] == "" for r in users
    )
    assert scalar(engine, "SELECT count(*) FROM users WHERE user_active_degree IS NULL") == sum(
        r["user_active_degree"] == "UNKNOWN" for r in users
    )
    assert scalar(engine, "SELECT typeof(follow_user_num_range) FROM users WHERE user_id = 2") == "text"
    # interactions: re-watches and same-event-other-date kept, empty time/date/timestamp -> NULL
    assert scalar(engine, "SELECT count(*) FROM train_interactions WHERE video_id = 8228") == 2
    assert scalar(engine, "SELECT count(*) FROM train_interactions WHERE video_id = 9534") == 2
    assert scalar(engine, "SELECT time FROM train_interactions WHERE video_id = 8228 AND play_duration = 13484") == (
        "2020-07-05 01:00:25.5"
    )
    untimed = sum(r["time"] == "" for r in rows(SMALL_TEXT))
    assert scalar(engine, "SELECT count(*) FROM eval_interactions WHERE time IS NULL AND date IS NULL") == untimed == 3
    assert scalar(engine, "SELECT count(*) FROM eval_interactions WHERE timestamp IS NULL") == untimed
    assert scalar(engine, "SELECT typeof(date) FROM eval_interactions WHERE video_id = 148") == "integer"
    assert scalar(engine, "SELECT date FROM eval_interactions WHERE video_id = 148") == 20200705
    # videos: latest daily row, median durations, interaction fallback, NULL markers, lists
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
    assert video.loc[4, ["manual_cover_text", "topic_tag"]].tolist() == ["夜市最美摊主", '["上热门","夜市","美食"]']
    assert video.loc[1378, "caption"] == "教练说：“我们要开始一段新的旅程！”"
    assert video.loc[5, "tags"] == "[5, 6, 28, 11]"
    with engine.connect() as conn:
        tags = conn.execute(text("SELECT video_id, tag_id FROM video_tags WHERE video_id IN (1, 5)")).all()
    assert sorted(tags) == [(1, 9), (1, 27), (5, 5), (5, 6), (5, 11), (5, 28)]
    # daily: every column, NaN -> NULL, float text of integer columns -> integers
    assert scalar(engine, "SELECT count(*) FROM video_daily WHERE collect_cnt IS NULL") == 3
    assert scalar(engine, "SELECT typeof(collect_cnt) FROM video_daily WHERE date = 20200728") == "integer"
    assert scalar(engine, "SELECT count(*) FROM video_daily WHERE video_duration IS NULL") == 2
    assert scalar(engine, "SELECT count(*) FROM friendships WHERE user_id = 5250") == 5
    files = pd.read_sql("SELECT * FROM source_files", engine).set_index("name")
    assert files.loc[BIG_MATRIX, ["rows", "rows_in_file", "table_name"]].tolist() == [
        EXPECTED_ROWS["train_interactions"],
        len(rows(BIG_TEXT)),
        "train_interactions",
    ]
    assert files.loc[SOCIAL_NETWORK, ["rows", "rows_in_file"]].tolist() == [
        EXPECTED_ROWS["friendships"],
        len(rows(SOCIAL_TEXT)),
    ]
    assert files.loc[CAPTION_CATEGORY, "size_bytes"] == len(CAPTION_TEXT.encode())
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
    dropped = f"{BIG_MATRIX}: {len(rows(BIG_TEXT))} rows, {exact_duplicates(BIG_TEXT)} duplicates dropped,"
    assert dropped in "\n".join(messages)
    zipped.dispose()


def test_crlf_files_with_a_bom_load_identically(loaded, tmp_path):
    """The zip members have LF endings; a CRLF or BOM copy must load the same rows."""
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
    assert result.duplicates_dropped == exact_duplicates(BIG_TEXT)


def test_changing_one_file_reloads_only_it(loaded, tmp_path):
    engine, dataset, first = loaded
    with open(dataset / SOCIAL_NETWORK, "a") as f:
        f.write("7087,[7117]\n")
    result = ingest(engine, tmp_path)
    assert result.loaded == [SOCIAL_NETWORK]
    assert result.rows == {**EXPECTED_ROWS, "friendships": EXPECTED_ROWS["friendships"] + 1}
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
    (dataset / CAPTION_CATEGORY).write_bytes(raw.replace("今天也在认真生活".encode(), "很认真".encode(), 1))
    result = ingest(engine, tmp_path)
    assert result.loaded == [CAPTION_CATEGORY]
    assert scalar(engine, "SELECT caption FROM videos WHERE video_id = 0") == "小伙子很认真 日常随拍"
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


def test_exact_duplicates_keep_rewatches_and_first_occurrences():
    frame = pd.DataFrame(
        {"user_id": [1, 1, 1, 1], "video_id": [5, 5, 5, 5], "time": ["a", "b", "a", "a"], "watch_ratio": [0.5] * 4}
    )
    repeated = duplicate_rows(frame)
    assert repeated.tolist() == [False, False, True, True]
    assert keep_rows(frame, ~repeated)["time"].tolist() == ["a", "b"]


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
