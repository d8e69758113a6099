"""What each feature means, and the family it belongs to, for people: the explanation sums
contributions by family, so redundant copies of one signal (amount and log amount, say) do not
hide each other."""

from __future__ import annotations

from fraud_assets.lib.schema import CATEGORIES

FAMILIES: dict[str, str] = {
    "amount": "the amount itself",
    "category": "the merchant category",
    "cardholder": "who the cardholder is (age, gender, city)",
    "card habits": "the amount and category against the card's usual spending",
    "recent activity": "the card's transactions in the hours and days before",
    "time": "time of day and week, and time since the card's previous transaction",
    "location": "distance between cardholder and merchant",
}

_ROW: dict[str, tuple[str, str]] = {
    "amt": ("amount", "amount"),
    "log_amt": ("amount (log)", "amount"),
    "category_code": ("category", "category"),
    **{f"is_{c}": (f"category is {c}", "category") for c in CATEGORIES},
    "hour": ("hour of day (UTC)", "time"),
    "day_of_week": ("day of week", "time"),
    "age_years": ("cardholder age", "cardholder"),
    "birth_year": ("cardholder's year of birth", "cardholder"),
    "gender_male": ("gender", "cardholder"),
    "log_city_pop": ("city population (log)", "cardholder"),
    "distance_km": ("cardholder-merchant distance (km)", "location"),
}
_HISTORY: dict[str, tuple[str, str]] = {
    "count_1h": ("card transactions, previous hour", "recent activity"),
    "amt_sum_1h": ("card spend, previous hour", "recent activity"),
    "count_24h": ("card transactions, previous 24 h", "recent activity"),
    "amt_sum_24h": ("card spend, previous 24 h", "recent activity"),
    "count_7d": ("card transactions, previous 7 days", "recent activity"),
    "amt_sum_7d": ("card spend, previous 7 days", "recent activity"),
    "amt_vs_card_mean": ("amount / card's mean amount", "card habits"),
    "secs_since_prev": ("seconds since card's previous transaction", "time"),
    "is_new_category": ("first time in this category", "card habits"),
    "card_tx_number": ("card's earlier transactions", "card habits"),
    "amt_vs_card_max": ("amount / card's largest earlier amount", "card habits"),
    "amt_zscore": ("amount z-score against the card's history", "card habits"),
    "amt_vs_card_category_mean": ("amount / card's mean in this category", "card habits"),
    "amt_sum_24h_vs_daily": ("24 h spend / card's usual daily spend", "recent activity"),
    "count_24h_vs_daily": ("24 h transactions / card's usual daily count", "recent activity"),
    "card_night_share": ("card's share of night-time transactions", "card habits"),
    "night_count_24h": ("night-time transactions, previous 24 h", "recent activity"),
    "night_amt_sum_24h": ("night-time spend, previous 24 h", "recent activity"),
    "night_count_7d": ("night-time transactions, previous 7 days", "recent activity"),
    "amt_max_24h": ("largest amount, previous 24 h", "recent activity"),
    "prev_amt": ("card's previous amount", "recent activity"),
    "prev_hour": ("hour of card's previous transaction", "time"),
}
_PROFILE: dict[str, tuple[str, str]] = {
    "card_tx_count": ("card's transactions in its profile", "card habits"),
    "amt_log_zscore": ("amount against the card's usual amounts (log z-score)", "card habits"),
    "category_share": ("card's share of purchases in this category", "card habits"),
    "category_tx_count": ("card's purchases in this category", "card habits"),
    "amt_vs_category_mean": ("amount / card's mean in this category", "card habits"),
    "amt_log_zscore_category": (
        "amount against the card's amounts in this category",
        "card habits",
    ),
    "amt_zscore_category": ("amount z-score in this category, for the card", "card habits"),
    "amt_vs_category_max": ("amount / card's largest in this category", "card habits"),
    "card_categories": ("categories the card has used", "card habits"),
    "card_log_mean": ("card's usual amount (log mean)", "card habits"),
    "card_log_std": ("spread of the card's amounts (log)", "card habits"),
    "card_big_share": ("card's share of purchases over $200", "card habits"),
    "card_night_mean_amt": ("card's mean night-time amount", "card habits"),
}
_ALL = {**_ROW, **_HISTORY, **_PROFILE}

#: Feature -> what it means.
FEATURE_LABELS: dict[str, str] = {name: label for name, (label, _) in _ALL.items()}
#: Feature -> its family (a key of ``FAMILIES``).
FEATURE_FAMILY: dict[str, str] = {name: family for name, (_, family) in _ALL.items()}
