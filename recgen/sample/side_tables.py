"""The side tables: captions and their category tree, daily item features, the social network."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

import numpy as np
import pandas as pd

from recgen.sample import vocabulary as txt
from recgen.sample.csv_format import date_int, list_text, quote
from recgen.sample.interactions import expected
from recgen.sample.params import (
    BASE_LOG_RATIO,
    CAPTION_EMPTY,
    CAPTION_HASHTAG,
    COVER_KNOWN,
    GAMMA_MEAN,
    N_CR_CAPTIONS,
    QUALITY_SD,
    REAL_VIDEOS,
    SECOND_KNOWN,
    THIRD_KNOWN,
)
from recgen.sample.world import World, categorical, sigmoid, zipf_weights

DAILY_CHUNK_VIDEOS = REAL_VIDEOS  # item_daily_features rows are drawn and written this many videos at a time
_DAILY_VIDEO_FIELDS = ("start_day", "end_day", "log_dur", "static", "dur_ms", "quality", "log_pop", "author")


def _category_tree(rng: np.random.Generator, first_ids: np.ndarray) -> tuple[dict, dict]:
    """Second- and third-level nodes: id -> (parent id, name), a strict tree with unique names and ids."""
    known = [c for c in first_ids if c != txt.UNKNOWN_ID]
    n2, n3 = sum(txt.N_SECOND[c] for c in known), sum(txt.N_THIRD[c] for c in known)
    ids2 = np.sort(rng.choice(np.arange(110, 750), n2, replace=False))
    ids3 = np.sort(rng.choice(np.arange(1051, 2677), n3, replace=False))
    second, third, i2, i3 = {}, {}, 0, 0
    for c in known:
        name1 = txt.FIRST_LEVEL[c][0]
        children = []
        for k in range(txt.N_SECOND[c]):
            suffix = txt.SECOND_SUFFIXES[k % len(txt.SECOND_SUFFIXES)] + ("" if k < 10 else str(k))
            second[int(ids2[i2])] = (c, name1 + suffix)
            children.append(int(ids2[i2]))
            i2 += 1
        for k in range(txt.N_THIRD[c]):
            parent = children[k % len(children)]
            word = txt.CATEGORY_WORDS[c][k % len(txt.CATEGORY_WORDS[c])]
            third[int(ids3[i3])] = (parent, word + txt.THIRD_SUFFIXES[k % len(txt.THIRD_SUFFIXES)])
            i3 += 1
    return second, third


def captions(rng: np.random.Generator, w: World) -> str:
    """kuairec_caption_category.csv as text: QUOTE_MINIMAL by hand, so the bare \\r stay unquoted."""
    n, first_ids = w.scale.n_videos, w.first_ids
    cat1 = first_ids[w.videos.cat1_idx]
    second, third = _category_tree(rng, first_ids)
    by_parent2: dict[int, list[int]] = {}
    for k, (p, _) in second.items():
        by_parent2.setdefault(p, []).append(k)
    by_parent3: dict[int, list[int]] = {}
    for k, (p, _) in third.items():
        by_parent3.setdefault(p, []).append(k)
    u2, u3, pick = rng.random(n), rng.random(n), rng.random((n, 2))
    rows = []
    n_words = rng.integers(2, 9, n)
    n_tags = np.minimum(rng.geometric(0.45, n), 9)
    has_tags = rng.random(n) < CAPTION_HASHTAG
    empty = rng.random(n) < CAPTION_EMPTY
    cover = rng.random(n) < COVER_KNOWN
    cr = set(rng.choice(np.flatnonzero(~empty), min(N_CR_CAPTIONS, int((~empty).sum())), replace=False).tolist())
    word_draws = rng.random((n, 12))
    for i in range(n):  # one caption per video (thousands of rows, not interactions)
        c = int(cat1[i])
        words = txt.CATEGORY_WORDS[c] + txt.COMMON_WORDS
        c2 = c3 = txt.UNKNOWN_ID
        if c != txt.UNKNOWN_ID and u2[i] < SECOND_KNOWN:
            kids = by_parent2[c]
            c2 = kids[int(pick[i, 0] ** 1.5 * len(kids))]
            if u3[i] < THIRD_KNOWN and c2 in by_parent3:
                kids3 = by_parent3[c2]
                c3 = kids3[int(pick[i, 1] ** 1.5 * len(kids3))]
        picks = (word_draws[i] * len(words)).astype(int)
        body = "".join(words[j] + txt.PUNCTUATION[j % len(txt.PUNCTUATION)] for j in picks[: n_words[i]])
        tags: list[str] = []
        if has_tags[i]:
            pool = txt.CATEGORY_WORDS[c] + txt.COMMON_HASHTAGS
            tags = sorted({pool[j % len(pool)] for j in picks[::-1][: n_tags[i]]})
            body = " ".join("#" + t for t in tags) + " " + body
        if i in cr:
            body = body[: len(body) // 2] + "\r" + body[len(body) // 2 :]
        caption = "" if empty[i] else body
        if empty[i]:
            tags = []
        cover_text = txt.COVER_PHRASES[picks[0] % len(txt.COVER_PHRASES)] if cover[i] else txt.UNKNOWN
        fields = [
            str(i), cover_text, caption, "[" + ",".join(tags) + "]",
            str(c), txt.FIRST_LEVEL[c][0],
            str(c2), second[c2][1] if c2 in second else txt.UNKNOWN,
            str(c3), third[c3][1] if c3 in third else txt.UNKNOWN,
        ]  # fmt: skip
        rows.append(",".join(quote(f) for f in fields))
    header = "video_id,manual_cover_text,caption,topic_tag,first_level_category_id,first_level_category_name,"
    header += "second_level_category_id,second_level_category_name,third_level_category_id,third_level_category_name"
    return header + "\n" + "\n".join(rows) + "\n"


def daily_tables(rng: np.random.Generator, w: World) -> Iterator[pd.DataFrame]:
    """item_daily_features in chunks of DAILY_CHUNK_VIDEOS videos (one chunk at every named scale)."""
    for first in range(0, w.scale.n_videos, DAILY_CHUNK_VIDEOS):
        yield daily_features(rng, w, first, min(first + DAILY_CHUNK_VIDEOS, w.scale.n_videos))


def daily_features(rng: np.random.Generator, w: World, first: int, last: int) -> pd.DataFrame:
    """item_daily_features of videos first..last-1: platform-wide daily counters driven by popularity (shows)
    and quality (rates)."""
    v = replace(w.videos, **{name: getattr(w.videos, name)[first:last] for name in _DAILY_VIDEO_FIELDS})
    n = last - first
    live = v.end_day - v.start_day + 1
    vid = np.repeat(np.arange(n), live)  # index into the chunk; the file's video_id is first + vid
    day = np.arange(len(vid)) - np.repeat(np.cumsum(live) - live - v.start_day, live)
    m = len(vid)
    # Video-level average behaviour of the whole platform: the model's expectation for an average user.
    eta0 = BASE_LOG_RATIO - GAMMA_MEAN * v.log_dur + v.static
    mean_ratio = expected(eta0, v.log_dur, v.dur_ms)
    zq = v.quality / QUALITY_SD
    old = rng.integers(1, 200, n)
    upload_day = np.where(v.start_day > 0, v.start_day, -old)
    age = day - upload_day[vid]
    show = np.rint(3_000 * np.exp(0.3 * v.log_pop[vid]) * (0.35 + 0.65 * np.exp(-age / 12)) * rng.lognormal(0, 0.3, m))
    show = show.astype(np.int64) + 1

    def share(count: np.ndarray, p: np.ndarray) -> np.ndarray:
        return rng.binomial(count, np.clip(p, 0, 1))

    play_p = sigmoid(0.6 + 0.5 * zq)[vid]
    play = share(show, play_p)
    ratio_v = mean_ratio[vid] * rng.lognormal(0, 0.05, m)
    complete_p = sigmoid(2.2 * np.log(ratio_v) + 0.4)
    long_video = v.dur_ms[vid] > 7_000
    f = pd.DataFrame({"video_id": first + vid, "date": date_int(day)})
    authors = v.author
    f["author_id"] = authors[vid]
    ad = rng.random(n) < 0.0034
    f["video_type"] = np.where(ad[vid], "AD", "NORMAL")
    f["upload_dt"] = np.datetime_as_string(np.datetime64("2020-07-05") + upload_day.astype("timedelta64[D]"))[vid]
    types = list(txt.UPLOAD_TYPES)
    f["upload_type"] = np.array(types)[categorical(rng, np.array(list(txt.UPLOAD_TYPES.values()), float), n)][vid]
    status = np.where(rng.random(n) < 0.994, 0, rng.integers(1, len(txt.VISIBLE_STATUS), n))
    f["visible_status"] = np.array(txt.VISIBLE_STATUS)[status][vid]
    daily_dur = (v.dur_ms + rng.choice([-1, 0, 0, 0, 1], n)).astype(float)
    daily_dur[rng.random(n) < 0.031] = np.nan
    f["video_duration"] = daily_dur[vid]
    res = np.array(txt.RESOLUTIONS)[categorical(rng, np.array([8, 2, 2, 1, 1, 1.0]), n)]
    f["video_width"], f["video_height"] = res[vid, 0], res[vid, 1]
    f["music_id"] = rng.integers(10**8, 4 * 10**9, n)[vid]
    tag_ids = np.array([0, *txt.VISUAL_TAGS])
    tag_w = np.concatenate(
        [[0.0945], 0.9055 * zipf_weights(len(txt.VISUAL_TAGS), 1.0) / zipf_weights(len(txt.VISUAL_TAGS), 1.0).sum()]
    )
    tag = tag_ids[categorical(rng, tag_w, n)]
    f["video_tag_id"] = tag[vid]
    f["video_tag_name"] = pd.Series([txt.VISUAL_TAGS.get(int(t)) for t in tag], dtype=object).to_numpy()[vid]
    f["show_cnt"] = show
    f["show_user_num"] = share(show, rng.uniform(0.7, 0.85, m))
    f["play_cnt"] = play
    f["play_user_num"] = share(play, rng.uniform(0.65, 0.8, m))
    f["play_duration"] = np.rint(play * v.dur_ms[vid] * ratio_v).astype(np.int64)
    complete = share(play, complete_p)
    f["complete_play_cnt"], f["complete_play_user_num"] = complete, share(complete, 0.85)
    valid = np.where(long_video, share(play, sigmoid(1.5 * np.log(ratio_v) + 0.9)), complete)
    f["valid_play_cnt"], f["valid_play_user_num"] = valid, share(valid, 0.87)
    long_p = np.where(v.dur_ms[vid] > 18_000, sigmoid(1.5 * np.log(ratio_v) - 0.2), complete_p)
    long_play = np.where(v.dur_ms[vid] > 7_000, share(play, long_p), valid)
    f["long_time_play_cnt"], f["long_time_play_user_num"] = long_play, share(long_play, 0.87)
    short = share(play, sigmoid(-1.6 - 1.5 * np.log(ratio_v)))
    f["short_time_play_cnt"], f["short_time_play_user_num"] = short, share(short, 0.77)
    f["play_progress"] = np.round(1 - np.exp(-1.1 * ratio_v), 6)
    like = share(play, 0.02 * np.exp(0.6 * zq[vid] + rng.normal(0, 0.3, m)))
    comment = share(play, 0.0015 * np.exp(0.4 * zq[vid]))
    counters = {
        "comment_stay_duration": np.rint(play * rng.lognormal(6.3, 0.4, m)).astype(np.int64),
        "like_cnt": like, "like_user_num": share(like, 0.99),
        "click_like_cnt": share(like, 0.55), "double_click_cnt": None,
        "cancel_like_cnt": share(like, 0.15),
    }  # fmt: skip
    counters["double_click_cnt"] = like - counters["click_like_cnt"]
    counters["cancel_like_user_num"] = share(counters["cancel_like_cnt"], 0.97)
    direct = share(comment, 0.7)
    counters |= {
        "comment_cnt": comment, "comment_user_num": share(comment, 0.95),
        "direct_comment_cnt": direct, "reply_comment_cnt": comment - direct,
        "delete_comment_cnt": share(comment, 0.02), "delete_comment_user_num": None,
        "comment_like_cnt": share(play, 0.01), "comment_like_user_num": None,
        "follow_cnt": share(play, 0.02 * np.exp(0.5 * zq[vid])), "follow_user_num": None,
        "cancel_follow_cnt": share(play, 0.0002), "cancel_follow_user_num": None,
        "share_cnt": share(play, 0.0008 * np.exp(0.7 * zq[vid])), "share_user_num": None,
        "download_cnt": share(play, 0.0009), "download_user_num": None,
        "report_cnt": share(play, 0.00005), "report_user_num": None,
        "reduce_similar_cnt": share(play, 0.0004 * np.exp(-0.5 * zq[vid])), "reduce_similar_user_num": None,
    }  # fmt: skip
    for name in list(counters):
        if counters[name] is None:
            counters[name] = share(counters[name.replace("_user_num", "_cnt")], 0.9)
    for name, values in counters.items():
        f[name] = values
    logged = (day >= 23).astype(float)  # collect_* were not logged before 2020-07-28
    collect = share(play, 0.001 * np.exp(0.5 * zq[vid]))
    cancel = share(collect, 0.05)
    f["collect_cnt"] = np.where(logged > 0, collect, np.nan)
    f["collect_user_num"] = np.where(logged > 0, share(collect, 0.97), np.nan)
    f["cancel_collect_cnt"] = np.where(logged > 0, cancel, np.nan)
    f["cancel_collect_user_num"] = np.where(logged > 0, share(cancel, 0.97), np.nan)
    return f


def social_network(rng: np.random.Generator, w: World) -> pd.DataFrame:
    """social_network.csv: a few hundred users with 1-5 friends each, unsorted; small users over-represented."""
    sc = w.scale
    weight = np.ones(sc.n_users)
    weight[w.users.small] = 1.8
    users = rng.choice(sc.n_users, sc.social_users, replace=False, p=weight / weight.sum())
    lengths = 1 + categorical(rng, np.array([353, 67, 33, 11, 8.0]), sc.social_users)
    while lengths.sum() != sc.social_entries:  # nudge lengths (within 1..5) to the exact total
        step = np.sign(sc.social_entries - lengths.sum())
        ok = np.flatnonzero((lengths + step >= 1) & (lengths + step <= 5))
        lengths[rng.choice(ok)] += step
    friends = rng.integers(0, sc.n_users, (sc.social_users, 5))
    for _ in range(100):  # redraw self-friendships and repeats, vectorised per round
        bad = friends == users[:, None]
        srt = np.sort(friends, axis=1)
        bad |= (np.diff(srt, axis=1) == 0).any(axis=1)[:, None] & (np.arange(5) > 0)
        if not bad.any():
            break
        friends[bad] = rng.integers(0, sc.n_users, bad.sum())
    lists = [friends[i, : lengths[i]].tolist() for i in range(sc.social_users)]
    return pd.DataFrame({"user_id": users, "friend_list": list_text(lists)})
