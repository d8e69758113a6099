"""The one feature implementation, shared by training, live scoring and the web app.

Row features describe the transaction itself. History features describe the same card's
strictly earlier transactions, so a model never sees the future. Online scoring computes
them by passing the card's stored history together with the new rows to the same function.
"""

from __future__ import annotations

import polars as pl

from fraud_assets.lib.schema import CATEGORIES

FEATURE_SET_VERSION = "v2"

#: Columns the feature code reads; everything else (labels, names, ids) never reaches a model.
INPUT_COLUMNS: tuple[str, ...] = (
    "trans_num",
    "event_time",
    "cc_num",
    "category",
    "amt",
    "gender",
    "dob",
    "city_pop",
    "lat",
    "long",
    "merch_lat",
    "merch_long",
)

ROW_FEATURES: tuple[str, ...] = (
    "amt",
    "log_amt",
    "category_code",
    "hour",
    "day_of_week",
    "age_years",
    "gender_male",
    "log_city_pop",
    "distance_km",
    # One indicator per category: a forest splits on these far better than on an ordinal code.
    *(f"is_{c}" for c in CATEGORIES),
)
HISTORY_WINDOWS: dict[str, str] = {"1h": "1h", "24h": "24h", "7d": "7d"}
HISTORY_FEATURES: tuple[str, ...] = (
    *(f"{kind}_{w}" for w in HISTORY_WINDOWS for kind in ("count", "amt_sum")),
    "amt_vs_card_mean",
    "secs_since_prev",
    "is_new_category",
    "card_tx_number",
    "amt_vs_card_max",
    "amt_zscore",
    "amt_vs_card_category_mean",
    "amt_sum_24h_vs_daily",
    "count_24h_vs_daily",
    "card_night_share",
    "night_count_24h",
    "night_amt_sum_24h",
    "night_count_7d",
    "amt_max_24h",
    "prev_amt",
    "prev_hour",
)
FEATURES: tuple[str, ...] = (*ROW_FEATURES, *HISTORY_FEATURES)

#: Stand-in for "no previous transaction": 30 days, in seconds.
NO_PREVIOUS_SECS = 30 * 86400.0
_EARTH_RADIUS_KM = 6371.0
#: Night hours, where most card fraud happens: 22:00 to 03:59.
NIGHT_START, NIGHT_END = 22, 4


def _haversine_km() -> pl.Expr:
    lat1, lon1 = pl.col("lat").radians(), pl.col("long").radians()
    lat2, lon2 = pl.col("merch_lat").radians(), pl.col("merch_long").radians()
    a = ((lat2 - lat1) / 2).sin() ** 2 + lat1.cos() * lat2.cos() * ((lon2 - lon1) / 2).sin() ** 2
    return 2 * _EARTH_RADIUS_KM * a.sqrt().arcsin()


def row_features() -> list[pl.Expr]:
    """Expressions for the per-row features."""
    dob = pl.col("dob").str.to_date("%Y-%m-%d", strict=False)
    age_days = (pl.col("event_time").dt.date() - dob).dt.total_days()
    category_code = pl.col("category").replace_strict(
        {c: i for i, c in enumerate(CATEGORIES)}, default=-1, return_dtype=pl.Int32
    )
    return [
        pl.col("amt").cast(pl.Float64).alias("amt"),
        pl.col("amt").cast(pl.Float64).log1p().alias("log_amt"),
        category_code.alias("category_code"),
        pl.col("event_time").dt.hour().cast(pl.Int32).alias("hour"),
        (pl.col("event_time").dt.weekday() - 1).cast(pl.Int32).alias("day_of_week"),
        (age_days / 365.25).alias("age_years"),
        (pl.col("gender") == "M").cast(pl.Int8).alias("gender_male"),
        pl.col("city_pop").cast(pl.Float64).log1p().alias("log_city_pop"),
        _haversine_km().alias("distance_km"),
        *((pl.col("category") == c).cast(pl.Int8).alias(f"is_{c}") for c in CATEGORIES),
    ]


def _past_sum(value: pl.Expr, period: str) -> pl.Expr:
    """Sum of ``value`` over the card's rows in ``[t - period, t)``: strictly earlier only.

    closed="left" leaves out the row itself and its same-time twins.
    """
    return value.rolling_sum_by("event_time", period, closed="left").over("cc_num").fill_null(0.0)


def history_features() -> list[pl.Expr]:
    """Expressions for per-card features over strictly earlier transactions.

    They expect the frame sorted by ``cc_num``, ``event_time`` and ``trans_num``; ties in time
    are ordered by ``trans_num`` for the running (cumulative) features.
    """
    card = "cc_num"
    amt = pl.col("amt").cast(pl.Float64)
    one = pl.col("event_time").is_not_null().cast(pl.Float64)
    hour = pl.col("event_time").dt.hour()
    night = ((hour >= NIGHT_START) | (hour < NIGHT_END)).cast(pl.Float64)

    def prior(value: pl.Expr, over: str | list[str] = card) -> pl.Expr:
        """Running total of ``value`` over the card's earlier rows."""
        return (value.cum_sum() - value).over(over)

    prior_n = pl.int_range(pl.len()).over(card)
    prior_mean = prior(amt) / prior_n
    prior_std = (prior(amt.pow(2)) / prior_n - prior_mean.pow(2)).clip(lower_bound=0.0).sqrt()
    prior_max = amt.cum_max().shift(1).over(card)
    cat_n = pl.int_range(pl.len()).over([card, "category"])
    cat_mean = prior(amt, [card, "category"]) / cat_n
    since_first = pl.col("event_time") - pl.col("event_time").first().over(card)
    days_seen = (since_first.dt.total_seconds() / 86400.0).clip(lower_bound=1.0)
    gap = (pl.col("event_time") - pl.col("event_time").shift(1)).over(card).dt.total_milliseconds()
    has_prior = prior_n > 0

    exprs: list[pl.Expr] = []
    for name, period in HISTORY_WINDOWS.items():
        exprs += [
            _past_sum(one, period).alias(f"count_{name}"),
            _past_sum(amt, period).alias(f"amt_sum_{name}"),
        ]
    exprs += [
        pl.when(has_prior)
        .then(amt / prior_mean.clip(lower_bound=1.0))
        .otherwise(1.0)
        .alias("amt_vs_card_mean"),
        (gap / 1000.0)
        .fill_null(NO_PREVIOUS_SECS)
        .clip(upper_bound=NO_PREVIOUS_SECS)
        .alias("secs_since_prev"),
        (cat_n == 0).cast(pl.Int8).alias("is_new_category"),
        prior_n.cast(pl.Int64).alias("card_tx_number"),
        pl.when(has_prior)
        .then(amt / prior_max.clip(lower_bound=1.0))
        .otherwise(1.0)
        .alias("amt_vs_card_max"),
        pl.when(prior_n > 1)
        .then((amt - prior_mean) / prior_std.clip(lower_bound=1.0))
        .otherwise(0.0)
        .alias("amt_zscore"),
        pl.when(cat_n > 0)
        .then(amt / cat_mean.clip(lower_bound=1.0))
        .otherwise(1.0)
        .alias("amt_vs_card_category_mean"),
        pl.when(has_prior)
        .then(_past_sum(amt, "24h") / (prior(amt) / days_seen).clip(lower_bound=1.0))
        .otherwise(0.0)
        .alias("amt_sum_24h_vs_daily"),
        pl.when(has_prior)
        .then(_past_sum(one, "24h") / (prior_n / days_seen).clip(lower_bound=0.1))
        .otherwise(0.0)
        .alias("count_24h_vs_daily"),
        pl.when(has_prior).then(prior(night) / prior_n).otherwise(0.0).alias("card_night_share"),
        _past_sum(night, "24h").alias("night_count_24h"),
        _past_sum(night * amt, "24h").alias("night_amt_sum_24h"),
        _past_sum(night, "7d").alias("night_count_7d"),
        amt.rolling_max_by("event_time", "24h", closed="left")
        .over(card)
        .fill_null(0.0)
        .alias("amt_max_24h"),
        amt.shift(1).over(card).fill_null(0.0).alias("prev_amt"),
        hour.shift(1).over(card).fill_null(-1).cast(pl.Int32).alias("prev_hour"),
    ]
    return exprs


def compute_features(transactions: pl.DataFrame) -> pl.DataFrame:
    """Return ``trans_num``, ``cc_num``, ``event_time`` and every feature, in input row order."""
    missing = [c for c in INPUT_COLUMNS if c not in transactions.columns]
    if missing:
        raise ValueError(f"feature input lacks columns: {', '.join(missing)}")
    frame = (
        transactions.select(INPUT_COLUMNS)
        .with_row_index("_row")
        .sort("cc_num", "event_time", "trans_num")
        .with_columns(history_features())
        .with_columns(row_features())
        .sort("_row")
    )
    return frame.select("trans_num", "cc_num", "event_time", *FEATURES)


def features_with_history(batch: pl.DataFrame, history: pl.DataFrame) -> pl.DataFrame:
    """Features for ``batch`` rows given the same cards' earlier transactions in ``history``.

    History rows that are also in the batch (same ``trans_num``) are ignored, so passing
    overlapping frames cannot double-count.
    """
    cols = list(INPUT_COLUMNS)
    hist = history.select(cols).filter(~pl.col("trans_num").is_in(batch["trans_num"].implode()))
    both = pl.concat([hist, batch.select(cols)], how="vertical_relaxed")
    feats = compute_features(both)
    return batch.select("trans_num").join(feats, on="trans_num", how="left", maintain_order="left")


def feature_matrix(features: pl.DataFrame):  # noqa: ANN201 - numpy array
    """The model input: feature columns only, as float64 numpy, in ``FEATURES`` order."""
    return features.select(pl.col(FEATURES).cast(pl.Float64)).to_numpy()


#: What each feature means, for people (the web app's explanation, docs).
FEATURE_LABELS: dict[str, str] = {
    "amt": "amount",
    "log_amt": "amount (log)",
    "category_code": "category",
    "hour": "hour of day (UTC)",
    "day_of_week": "day of week",
    "age_years": "cardholder age",
    "gender_male": "gender",
    "log_city_pop": "city population (log)",
    "distance_km": "cardholder-merchant distance (km)",
    **{f"is_{c}": f"category is {c}" for c in CATEGORIES},
    "count_1h": "card transactions, previous hour",
    "amt_sum_1h": "card spend, previous hour",
    "count_24h": "card transactions, previous 24 h",
    "amt_sum_24h": "card spend, previous 24 h",
    "count_7d": "card transactions, previous 7 days",
    "amt_sum_7d": "card spend, previous 7 days",
    "amt_vs_card_mean": "amount / card's mean amount",
    "secs_since_prev": "seconds since card's previous transaction",
    "is_new_category": "first time in this category",
    "card_tx_number": "card's earlier transactions",
    "amt_vs_card_max": "amount / card's largest earlier amount",
    "amt_zscore": "amount z-score against the card's history",
    "amt_vs_card_category_mean": "amount / card's mean in this category",
    "amt_sum_24h_vs_daily": "24 h spend / card's usual daily spend",
    "count_24h_vs_daily": "24 h transactions / card's usual daily count",
    "card_night_share": "card's share of night-time transactions",
    "night_count_24h": "night-time transactions, previous 24 h",
    "night_amt_sum_24h": "night-time spend, previous 24 h",
    "night_count_7d": "night-time transactions, previous 7 days",
    "amt_max_24h": "largest amount, previous 24 h",
    "prev_amt": "card's previous amount",
    "prev_hour": "hour of card's previous transaction",
}
