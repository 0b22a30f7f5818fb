"""A tiny KuaiRec dataset written by hand in the exact real text format, with its quirks.

All seven files: the real KuaiRec files are third-party data and stay out of the project, so the tests
that need a whole dataset load these bytes. Every value is invented; only the layout is KuaiRec's. The
expected counts (`expected_rows`) are derived here from the text with the standard library, never from
recgen's readers.

Quirks reproduced: exact duplicate rows and re-watches in big_matrix (§1.3), the same event
filed under two dates (§1.3), trimmed millisecond fractions (§1.2), small_matrix rows without time and
`20200705.0` dates (§2.1), quoted lists `"[27, 9]"` (§5.2, §4.2), empty fields for NaN in user_features with
integers written without `.0` (§6.2), `UNKNOWN` activity degree, cover text and category names, `-124`
category ids, empty captions, `[a,b]` topic tags, an ASCII quote and comma inside captions, NBSP, and bare
`\\r` inside captions, unquoted as in the real file and inside a quoted field (§8), daily rows with empty
durations and collect counters, no platform tag (0) and float text of integer counters (§7).
"""

from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path

from recgen.constants import (
    BIG_MATRIX,
    CAPTION_CATEGORY,
    ITEM_CATEGORIES,
    ITEM_DAILY_FEATURES,
    SMALL_MATRIX,
    SOCIAL_NETWORK,
    USER_FEATURES,
)

# The headers of the real KuaiRec 2.0 files.
INTERACTION_HEADER = "user_id,video_id,play_duration,video_duration,time,date,timestamp,watch_ratio"
SOCIAL_HEADER = "user_id,friend_list"
ITEM_CATEGORIES_HEADER = "video_id,feat"
USER_FEATURES_HEADER = (
    "user_id,user_active_degree,is_lowactive_period,is_live_streamer,is_video_author,follow_user_num,"
    "follow_user_num_range,fans_user_num,fans_user_num_range,friend_user_num,friend_user_num_range,register_days,"
    "register_days_range," + ",".join(f"onehot_feat{i}" for i in range(18))
)
CAPTION_HEADER = (
    "video_id,manual_cover_text,caption,topic_tag,first_level_category_id,first_level_category_name,"
    "second_level_category_id,second_level_category_name,third_level_category_id,third_level_category_name"
)
DAILY_HEADER = (
    "video_id,date,author_id,video_type,upload_dt,upload_type,visible_status,video_duration,video_width,"
    "video_height,music_id,video_tag_id,video_tag_name,show_cnt,show_user_num,play_cnt,play_user_num,play_duration,"
    "complete_play_cnt,complete_play_user_num,valid_play_cnt,valid_play_user_num,long_time_play_cnt,"
    "long_time_play_user_num,short_time_play_cnt,short_time_play_user_num,play_progress,comment_stay_duration,"
    "like_cnt,like_user_num,click_like_cnt,double_click_cnt,cancel_like_cnt,cancel_like_user_num,comment_cnt,"
    "comment_user_num,direct_comment_cnt,reply_comment_cnt,delete_comment_cnt,delete_comment_user_num,"
    "comment_like_cnt,comment_like_user_num,follow_cnt,follow_user_num,cancel_follow_cnt,cancel_follow_user_num,"
    "share_cnt,share_user_num,download_cnt,download_user_num,report_cnt,report_user_num,reduce_similar_cnt,"
    "reduce_similar_user_num,collect_cnt,collect_user_num,cancel_collect_cnt,cancel_collect_user_num"
)

# Exact duplicates (rows 3 and 12 of the data), a re-watch (8228), the same event filed under two dates
# (2783/9534, kept: not an exact duplicate), trimmed millisecond fractions.
BIG_TEXT = f"""\
{INTERACTION_HEADER}
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
# `20200705.0` dates, and rows without time, date and timestamp (they come last, as in the real file).
SMALL_TEXT = f"""\
{INTERACTION_HEADER}
14,148,4381,6067,2020-07-05 05:27:48.378,20200705.0,1593898068.378,0.7221031811438932
14,183,11635,6100,2020-07-05 05:28:00.057,20200705.0,1593898080.057,1.907377049180328
14,3649,22422,10867,2020-07-05 05:29:09.479,20200705.0,1593898149.479,2.063310941382166
7162,2267,11908,5467,,,,2.1781598683007135
7162,2065,11919,6067,,,,1.9645623866820505
7162,4364,2182,19367,,,,0.11266587494191149
"""
SOCIAL_TEXT = f"""\
{SOCIAL_HEADER}
3371,[2975]
24,[2665]
5352,"[4202, 7126]"
5250,"[1, 2, 3, 4, 5]"
"""
# One row per user the interactions name, and more: UNKNOWN activity (3), NaN in onehot_feat4 (16, 2783) and
# in all seven float columns (5), the range text `0` (2), a register_days below every bucket (2).
USER_ROWS = [
    '0,high_active,0,0,0,7,"(0,10]",0,0,0,0,98,91-180,0,1,12,640,3,0,1,5,180,6,2,0,0,0,0,0,0,0',
    '1,full_active,0,0,0,310,"(250,500]",3,"[1,10)",2,"[1,5)",330,181-365,0,3,20,1010,0,0,1,6,190,6,2,0,0,0,0,0,0,0',
    "2,full_active,0,0,0,0,0,0,0,0,0,12,15-30,1,6,8,402,0,0,0,2,51,2,3,0,0,0,0,0,0,0",
    '3,UNKNOWN,0,0,0,16,"(10,50]",0,0,0,0,105,61-90,0,1,8,281,0,0,0,34,251,3,2,0,0,0,0,0,0,0',
    '5,middle_active,1,0,0,17,"(10,50]",0,0,0,0,376,181-365,1,1,8,159,,0,0,18,72,6,0,0,,,,,,',
    '14,full_active,0,0,1,73,"(50,100]",6,"[1,10)",1,"[1,5)",279,181-365,0,5,8,417,2,0,1,3,297,4,2,0,1,1,1,0,0,0',
    '16,full_active,0,0,0,140,"(100,150]",4,"[1,10)",4,"[1,5)",270,181-365,1,2,23,1005,,0,1,7,274,1,3,0,0,0,0,0,0,0',
    '2783,high_active,0,1,0,560,500+,120,"[100,1k)",35,"[30,60)",800,730+,1,2,23,1005,,0,1,7,274,1,3,0,0,0,0,0,0,0',
    '7162,full_active,0,0,0,2100,500+,11401,"[1w,10w)",1425,250+,2245,730+,0,7,29,1075,11,9,2,46,339,6,4,2,1,1,1,1,1,1',
    '7175,full_active,0,0,1,90,"(50,100]",35,"[10,100)",33,"[30,60)",167,91-180,0,6,8,290,1,0,1,19,132,5,2,0,0,0,0,0,0,0',
]
# Every video the interactions and the daily file name, and 5 (used by the bad-input tests); 1-4 tags.
ITEM_CATEGORY_ROWS = [
    "0,[8]",
    '1,"[27, 9]"',
    "2,[9]",
    '4,"[12, 28]"',
    '5,"[5, 6, 28, 11]"',
    "148,[28]",
    "183,[19]",
    '1378,"[6, 11]"',
    "2065,[11]",
    '2267,"[1, 28, 11]"',
    "3649,[26]",
    "4364,[0]",
    "5910,[11]",
    "6331,[30]",
    "8228,[7]",
    "8234,[8]",
    '9534,"[25, 8]"',
    "9598,[11]",
    "10389,[15]",
    "10727,[5]",
]
# The same videos. Bare \r: unquoted in 1378 (mid-field), 5910 (field end), 6331 (before a space), as in the
# real file; inside a quoted field in 148. `-124`/UNKNOWN at every level (6331), known 1st level only (1378).
CAPTION_ROWS = [
    "0,UNKNOWN,小伙子今天也在认真生活 日常随拍,[],8,颜值,673,颜值随拍,-124,UNKNOWN",
    "1,UNKNOWN,,[],27,高新数码,-124,UNKNOWN,-124,UNKNOWN",
    "2,UNKNOWN,下班后，跑步五公里！,[],9,喜剧,727,搞笑互动,-124,UNKNOWN",
    '4,夜市最美摊主,#美食 #夜市 #上热门 今天的烤串卖完啦！,"[上热门,夜市,美食]",12,美食,512,美食探店,2101,街头小吃',
    '5,新品上架,"新款外套,三种颜色 #穿搭",[穿搭],5,时尚,737,营销售卖,2596,女装',
    '148,UNKNOWN,"早安,打工人\r加油",[],28,民生资讯,301,社会新闻,-124,UNKNOWN',
    '183,UNKNOWN,"他说""明天见""就走了",[],19,情感,640,情感语录,-124,UNKNOWN',
    "1378,UNKNOWN,教练说：“我们要开始一段新的旅程\r！”,[],6,明星娱乐,-124,UNKNOWN,-124,UNKNOWN",
    "2065,UNKNOWN,,[],34,其他,418,生活泛拍,-124,UNKNOWN",
    '2267,周末去爬山,#旅行 #爬山\xa0#周末 山顶的风景真好,"[周末,旅行,爬山]",10,旅游,530,户外旅行,2210,登山',
    "3649,UNKNOWN,猫咪第一次见到雪,[],17,宠物,590,萌宠日常,2300,猫",
    "4364,UNKNOWN,NA,[],34,其他,418,生活泛拍,-124,UNKNOWN",
    "5910,UNKNOWN,答应你的事就一定做到\r,[],34,其他,418,生活泛拍,-124,UNKNOWN",
    "6331,UNKNOWN,这辆车终于开回家了！\r ,[],-124,UNKNOWN,-124,UNKNOWN,-124,UNKNOWN",
    "8228,教你做蛋糕,三步做好一个蛋糕 #美食,[美食],12,美食,515,美食教程,2120,烘焙",
    "8234,UNKNOWN,今天的妆容 #美妆,[美妆],4,美妆,420,美妆教程,-124,UNKNOWN",
    '9534,UNKNOWN,#舞蹈\xa0#跳舞 一起来跳,"[舞蹈,跳舞]",1,舞蹈,110,舞蹈教学,1051,街舞',
    "9598,UNKNOWN,老家的小院,[],13,三农,560,农村生活,-124,UNKNOWN",
    "10389,UNKNOWN,新歌试唱,[],2,音乐,120,翻唱,-124,UNKNOWN",
    "10727,UNKNOWN,今天开箱新手机,[],27,高新数码,700,数码测评,2600,手机",
]
CR_UNQUOTED = (1378, 5910, 6331)  # the rows plain pandas.read_csv splits in two
CR_QUOTED = (148,)  # a \r inside quotes, which pandas keeps in the field

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

USER_TEXT = "\n".join([USER_FEATURES_HEADER, *USER_ROWS]) + "\n"
ITEM_CATEGORIES_TEXT = "\n".join([ITEM_CATEGORIES_HEADER, *ITEM_CATEGORY_ROWS]) + "\n"
CAPTION_TEXT = "\n".join([CAPTION_HEADER, *CAPTION_ROWS]) + "\n"
DAILY_TEXT = "\n".join([DAILY_HEADER, *DAILY_ROWS]) + "\n"
CATALOGUE = {USER_FEATURES: USER_TEXT, ITEM_CATEGORIES: ITEM_CATEGORIES_TEXT, CAPTION_CATEGORY: CAPTION_TEXT}
FILES = {
    **CATALOGUE,
    BIG_MATRIX: BIG_TEXT,
    SMALL_MATRIX: SMALL_TEXT,
    SOCIAL_NETWORK: SOCIAL_TEXT,
    ITEM_DAILY_FEATURES: DAILY_TEXT,
}


def write_dataset(folder: Path, catalogue_from: Path | None = None) -> Path:
    """The seven files in `folder` (created); returns it. With `catalogue_from`, the three catalogue files are
    links to the files of that folder (the real ones, read where they are, never copied) instead."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, content in FILES.items():
        if catalogue_from is not None and name in CATALOGUE:
            os.symlink(catalogue_from / name, folder / name)
        else:
            (folder / name).write_bytes(content.encode("utf-8"))  # bytes: no newline translation, \r kept
    return folder


def rows(content: str) -> list[dict[str, str]]:
    """The data rows of a file's text by the stdlib csv module, the bare \\r removed first (the caption fix)."""
    return list(csv.DictReader(io.StringIO(content.replace("\r", ""), newline="")))


def exact_duplicates(content: str) -> int:
    """Data lines equal to an earlier line."""
    lines = content.splitlines()[1:]
    return len(lines) - len(set(lines))


def expected_rows() -> dict[str, int]:
    """Rows of each input table after loading the handwritten files, counted from the text."""
    video_ids = {r["video_id"] for name in (ITEM_CATEGORIES_TEXT, CAPTION_TEXT, DAILY_TEXT) for r in rows(name)}
    friend_pairs = {(r["user_id"], f) for r in rows(SOCIAL_TEXT) for f in json.loads(r["friend_list"])}
    return {
        "users": len(rows(USER_TEXT)),
        "videos": len(video_ids),
        "video_tags": sum(len(set(json.loads(r["feat"]))) for r in rows(ITEM_CATEGORIES_TEXT)),
        "video_daily": len(rows(DAILY_TEXT)),
        "train_interactions": len(rows(BIG_TEXT)) - exact_duplicates(BIG_TEXT),
        "eval_interactions": len(rows(SMALL_TEXT)),
        "friendships": len(friend_pairs),
    }
