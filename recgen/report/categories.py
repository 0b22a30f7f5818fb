"""KuaiRec's first-level categories in English, and how the report files training views per category."""

CATEGORY_VIEWS_SECTION = "categories"  # data_profile rows `train_views.<first-level name>`, written by the report
CATEGORY_VIEWS_PREFIX = "train_views."
NO_CATEGORY = "(none)"

# English names of KuaiRec's 39 first-level categories (recgen's own translation), for charts and queries.
FIRST_LEVEL_ENGLISH = {
    "舞蹈": "Dance", "音乐": "Music", "游戏": "Games", "美妆": "Beauty", "时尚": "Fashion",
    "明星娱乐": "Celebrities", "运动": "Sports", "颜值": "Good looks", "喜剧": "Comedy", "旅游": "Travel",
    "生活": "Lifestyle", "美食": "Food", "三农": "Rural life", "教育": "Education", "艺术": "Arts",
    "健康": "Health", "宠物": "Pets", "汽车": "Cars", "情感": "Relationships", "二次元": "Anime",
    "人文": "Humanities", "财经": "Finance", "时政资讯": "Current affairs", "星座命理": "Astrology",
    "亲子": "Parenting", "摄影": "Photography", "高新数码": "Tech", "民生资讯": "Local news",
    "科学与法律": "Science & law", "健身": "Fitness", "短剧": "Short drama", "自拍": "Selfies", "其他": "Other",
    "军事": "Military", "房产家居": "Home", "奇人异象": "Oddities", "读书": "Books", "影视综": "Film & TV",
    "UNKNOWN": "Unknown",
}  # fmt: skip


def english_category(name: str | None) -> str:
    """`Food (美食)` for a known first-level name, the name itself otherwise, `(none)` for NULL."""
    if name is None:
        return NO_CATEGORY
    english = FIRST_LEVEL_ENGLISH.get(name)
    return f"{english} ({name})" if english else name
