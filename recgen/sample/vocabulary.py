"""Vocabularies for the synthetic KuaiRec generator: category tree, caption words, tags and labels.

Kept apart from `recgen.sample` so the generator reads as a model and this file as data. Every list here is
invented for the synthetic sample (the real category names of the first level are public in the real file and
reused so a sample looks like the real file); nothing is copied from the real CSVs.
"""

# First-level caption categories: id -> (name, real video count). -124 is the real "unknown".
FIRST_LEVEL: dict[int, tuple[str, int]] = {
    1: ("舞蹈", 422), 2: ("音乐", 191), 3: ("游戏", 105), 4: ("美妆", 153), 5: ("时尚", 1034),
    6: ("明星娱乐", 473), 7: ("运动", 317), 8: ("颜值", 824), 9: ("喜剧", 366), 10: ("旅游", 136),
    11: ("生活", 417), 12: ("美食", 475), 13: ("三农", 236), 14: ("教育", 60), 15: ("艺术", 309),
    16: ("健康", 190), 17: ("宠物", 228), 18: ("汽车", 119), 19: ("情感", 532), 20: ("二次元", 257),
    21: ("人文", 50), 22: ("财经", 31), 23: ("时政资讯", 50), 24: ("星座命理", 41), 25: ("亲子", 363),
    26: ("摄影", 211), 27: ("高新数码", 42), 28: ("民生资讯", 1095), 29: ("科学与法律", 82), 31: ("健身", 162),
    32: ("短剧", 152), 33: ("自拍", 379), 34: ("其他", 914), 35: ("军事", 77), 36: ("房产家居", 49),
    37: ("奇人异象", 19), 38: ("读书", 65), 39: ("影视综", 62), -124: ("UNKNOWN", 40),
}  # fmt: skip
UNKNOWN_ID = -124
UNKNOWN = "UNKNOWN"

# The feature tag (item_categories.csv, 0..30) most often listed first for each first-level category: the
# generator ties tags and categories together through it (in the real data they agree for about 71% of videos).
MODAL_TAG: dict[int, int] = {
    -124: 7, 1: 1, 2: 2, 3: 3, 4: 4, 5: 5, 6: 6, 7: 7, 8: 8, 9: 9, 10: 10, 11: 11, 12: 12, 13: 13, 14: 14,
    15: 15, 16: 16, 17: 17, 18: 18, 19: 19, 20: 20, 21: 23, 22: 22, 23: 28, 24: 11, 25: 25, 26: 26, 27: 27,
    28: 28, 29: 17, 31: 7, 32: 6, 33: 11, 34: 11, 35: 28, 36: 11, 37: 11, 38: 19, 39: 6,
}  # fmt: skip

# Number of second- and third-level children under each first-level category (shape of the real tree).
N_SECOND: dict[int, int] = {
    1: 7, 2: 4, 3: 10, 4: 6, 5: 5, 6: 3, 7: 8, 8: 4, 9: 7, 10: 3, 11: 5, 12: 6, 13: 4, 14: 6, 15: 8, 16: 3,
    17: 4, 18: 6, 19: 3, 20: 6, 21: 3, 22: 5, 23: 3, 24: 2, 25: 4, 26: 3, 27: 3, 28: 3, 29: 3, 31: 4, 32: 7,
    33: 1, 34: 2, 35: 5, 36: 6, 37: 5, 38: 4, 39: 4,
}  # fmt: skip
N_THIRD: dict[int, int] = {
    1: 12, 2: 7, 3: 1, 4: 8, 5: 11, 6: 3, 7: 19, 8: 1, 9: 2, 10: 6, 11: 8, 12: 9, 13: 4, 14: 8, 15: 27,
    16: 8, 17: 8, 18: 11, 19: 6, 20: 18, 21: 4, 22: 6, 23: 4, 24: 5, 25: 8, 26: 5, 27: 3, 28: 11, 29: 5,
    31: 8, 32: 1, 33: 1, 34: 1, 35: 3, 36: 8, 37: 2, 38: 4, 39: 1,
}  # fmt: skip
SECOND_SUFFIXES = ("随拍", "日常", "技巧", "达人", "资讯", "教程", "互动", "分享", "精选", "现场")
THIRD_SUFFIXES = ("入门", "进阶", "合集", "测评", "推荐", "挑战", "故事", "花絮", "攻略", "记录", "剪辑", "解说")

# Caption words per first-level category: Chinese words, hashtags, and a few ASCII words so that an English
# full-text search over captions finds something.
CATEGORY_WORDS: dict[int, tuple[str, ...]] = {
    1: ("跳舞", "舞蹈", "街舞", "广场舞", "卡点", "dance", "手势舞"),
    2: ("唱歌", "翻唱", "吉他", "钢琴", "原创音乐", "music", "cover"),
    3: ("王者荣耀", "和平精英", "游戏", "上分", "吃鸡", "game", "gaming"),
    4: ("化妆", "口红", "眼影", "护肤", "美妆教程", "makeup"),
    5: ("穿搭", "女装", "潮流", "搭配", "新款", "fashion", "ootd"),
    6: ("明星", "偶像", "追星", "娱乐", "新剧", "star"),
    7: ("篮球", "足球", "跑步", "运动", "比赛", "sport", "nba"),
    8: ("小姐姐", "帅哥", "颜值", "美女", "随拍", "selfie"),
    9: ("搞笑", "段子", "笑死", "沙雕", "喜剧", "funny"),
    10: ("旅行", "风景", "打卡", "古城", "自驾", "travel", "vlog"),
    11: ("生活", "日常", "记录", "家人们", "晚饭后", "vlog", "daily"),
    12: ("美食", "做饭", "家常菜", "吃播", "烧烤", "cooking", "food"),
    13: ("农村", "种地", "丰收", "乡村生活", "三农", "farm"),
    14: ("学习", "知识", "考试", "英语", "课堂", "study", "english"),
    15: ("画画", "书法", "手工", "艺术", "创作", "art", "diy"),
    16: ("养生", "健康", "中医", "睡眠", "减肥", "health"),
    17: ("猫咪", "狗狗", "萌宠", "宠物日常", "铲屎官", "cat", "dog"),
    18: ("汽车", "改装", "试驾", "豪车", "自驾游", "car"),
    19: ("情感", "爱情", "婚姻", "语录", "扎心", "love"),
    20: ("动漫", "二次元", "cos", "手办", "番剧", "anime", "cosplay"),
    21: ("历史", "文化", "传统", "古建筑", "人文", "history"),
    22: ("理财", "股票", "基金", "赚钱", "财经", "money"),
    23: ("新闻", "时事", "政策", "发布会", "news"),
    24: ("星座", "运势", "塔罗", "属相", "tarot"),
    25: ("宝宝", "育儿", "亲子", "萌娃", "家庭", "baby"),
    26: ("摄影", "拍照", "构图", "延时", "手机摄影", "photo"),
    27: ("手机", "数码", "测评", "电脑", "黑科技", "tech", "iphone"),
    28: ("民生", "社会", "热点", "正能量", "现场", "news"),
    29: ("科学", "实验", "法律", "科普", "普法", "science"),
    31: ("健身", "减脂", "腹肌", "瑜伽", "打卡", "fitness", "gym"),
    32: ("短剧", "剧情", "连续剧", "反转", "演技", "drama"),
    33: ("自拍", "素颜", "日常", "心情", "随手拍", "selfie"),
    34: ("分享", "记录", "生活", "随便拍拍", "日常"),
    35: ("军事", "武器", "阅兵", "军人", "致敬", "army"),
    36: ("装修", "家居", "房子", "收纳", "设计", "home"),
    37: ("奇闻", "神奇", "罕见", "绝技", "不可思议"),
    38: ("读书", "好书推荐", "名言", "阅读", "book"),
    39: ("电影", "电视剧", "综艺", "影评", "剪辑", "movie"),
    -124: ("分享", "日常", "记录"),
}
# Words any caption may use, and the platform's generic hashtags ("please put me on the hot list").
COMMON_WORDS = (
    "今天",
    "大家",
    "一起",
    "真的",
    "太",
    "好看",
    "喜欢",
    "哈哈哈",
    "家人们",
    "点赞",
    "关注我",
    "加油",
    "晚上好",
)
COMMON_HASHTAGS = ("感谢快手我要上热门", "快手创作者服务中心", "上热门", "作品推广", "此作品申请热门", "记录生活")
PUNCTUATION = ("！", "。", "，", "～", "？", "😂", "👍", "🔥", " ", "\xa0")
COVER_PHRASES = (
    "一定要看到最后",
    "太好笑了",
    "今日分享",
    "第二集",
    "你学会了吗",
    "新手必看",
    "绝了",
    "太美了",
    "上热门",
)

# Per-video visual tag in item_daily_features (video_tag_id, video_tag_name); 0 means "no tag" (empty name).
VISUAL_TAGS: dict[int, str] = {
    2624: "正面", 381: "电影黑条", 2625: "侧面", 2139: "自拍脸", 1123: "明星", 841: "建筑", 95: "美食",
    77: "宠物", 318: "室内", 512: "风景", 620: "文字", 733: "舞台", 1402: "汽车", 1570: "儿童", 1888: "手工",
    2011: "运动场", 2290: "夜景", 2402: "游戏画面", 2503: "动漫", 2777: UNKNOWN,
}  # fmt: skip

UPLOAD_TYPES: dict[str, int] = {
    "ShortImport": 201962, "ShortCamera": 50461, "Kmovie": 27192, "LongImport": 17654, "Web": 11077,
    "UNKNOWN": 10135, "LongCamera": 5878, "AiCutVideo": 5833, "LongPicture": 5004, "PictureSet": 4957,
    "FollowShoot": 1282, "FlashPhoto": 538, "ShareFromOtherApp": 444, "PhotoCopy": 344, "SameFrame": 335,
    "PictureCopy": 150, "LocalIntelligenceAlbum": 54, "LocalCollection": 41,
}  # fmt: skip
# The real non-public labels were never printed; these are plausible stand-ins.
VISIBLE_STATUS = ("public", "friend", "private")
RESOLUTIONS = ((720, 1280), (576, 1024), (540, 960), (720, 1556), (528, 960), (1080, 1920))

# user_features.csv label sets, exactly as in the real file, with their upper bounds.
ACTIVE_DEGREES = ("full_active", "high_active", "UNKNOWN", "middle_active")
FOLLOW_RANGES = ((0, "0"), (10, "(0,10]"), (50, "(10,50]"), (100, "(50,100]"), (150, "(100,150]"),
                 (250, "(150,250]"), (500, "(250,500]"), (10**9, "500+"))  # fmt: skip
FANS_RANGES = ((0, "0"), (9, "[1,10)"), (99, "[10,100)"), (999, "[100,1k)"), (4999, "[1k,5k)"),
               (9999, "[5k,1w)"), (99999, "[1w,10w)"))  # fmt: skip
FRIEND_RANGES = ((0, "0"), (4, "[1,5)"), (29, "[5,30)"), (59, "[30,60)"), (119, "[60,120)"),
                 (249, "[120,250)"), (10**9, "250+"))  # fmt: skip
REGISTER_RANGES = ((30, "15-30"), (60, "31-60"), (90, "61-90"), (180, "91-180"), (365, "181-365"),
                   (730, "366-730"), (10**9, "730+"))  # fmt: skip
