"""The one feature implementation, shared by training, live scoring and the web app.

Row features describe the transaction itself. History features describe the same card's
strictly earlier transactions, so a model never sees the future. Online scoring computes
them by passing the card's stored history together with the new rows to the same function.
"""

from __future__ import annotations

import polars as pl

from fraud_assets.lib.schema import CATEGORIES

FEATURE_SET_VERSION = "v1"

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
)
HISTORY_WINDOWS: dict[str, str] = {"1h": "1h", "24h": "24h", "7d": "7d"}
HISTORY_FEATURES: tuple[str, ...] = (
    *(f"{kind}_{w}" for w in HISTORY_WINDOWS for kind in ("count", "amt_sum")),
    "amt_vs_card_mean",
    "secs_since_prev",
    "is_new_category",
    "card_tx_number",
)
FEATURES: tuple[str, ...] = (*ROW_FEATURES, *HISTORY_FEATURES)

#: Stand-in for "no previous transaction": 30 days, in seconds.
NO_PREVIOUS_SECS = 30 * 86400.0
_EARTH_RADIUS_KM = 6371.0


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
    ]


def history_features() -> list[pl.Expr]:
    """Expressions for per-card features over strictly earlier transactions.

    They expect the frame sorted by ``cc_num``, ``event_time`` and ``trans_num``.
    """
    card = "cc_num"
    exprs: list[pl.Expr] = []
    one = pl.col("event_time").is_not_null().cast(pl.Float64)
    for name, period in HISTORY_WINDOWS.items():
        # closed="left": the window [t - period, t) leaves out the row itself and its twins.
        exprs.append(
            one.rolling_sum_by("event_time", period, closed="left")
            .over(card)
            .fill_null(0.0)
            .alias(f"count_{name}")
        )
        exprs.append(
            pl.col("amt")
            .rolling_sum_by("event_time", period, closed="left")
            .over(card)
            .fill_null(0.0)
            .alias(f"amt_sum_{name}")
        )
    prior_n = pl.int_range(pl.len()).over(card)
    prior_sum = (pl.col("amt").cum_sum() - pl.col("amt")).over(card)
    prior_mean = prior_sum / prior_n
    gap = (pl.col("event_time") - pl.col("event_time").shift(1)).over(card).dt.total_milliseconds()
    exprs += [
        pl.when(prior_n > 0)
        .then(pl.col("amt") / prior_mean.clip(lower_bound=1.0))
        .otherwise(1.0)
        .alias("amt_vs_card_mean"),
        (gap / 1000.0)
        .fill_null(NO_PREVIOUS_SECS)
        .clip(upper_bound=NO_PREVIOUS_SECS)
        .alias("secs_since_prev"),
        (pl.int_range(pl.len()).over([card, "category"]) == 0)
        .cast(pl.Int8)
        .alias("is_new_category"),
        prior_n.cast(pl.Int64).alias("card_tx_number"),
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
