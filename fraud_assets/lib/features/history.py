"""Per-card history over strictly earlier transactions: valid only for event-time feeds.

These features (features v2) describe the same card's earlier transactions by their true event
times: counts and sums over recent windows, time since the previous transaction, running
aggregates. Online scoring computes them by passing the card's stored history together with
the new rows to the same function, so training and serving cannot drift apart. Under a feed
without a true event time they describe the feed's sampling, not the card: see ``profile.py``.
"""

from __future__ import annotations

import polars as pl

from fraud_assets.lib.features.row import EVENT_ROW, row_features
from fraud_assets.lib.schema import FEATURE_INPUT_COLUMNS

INPUT_COLUMNS = FEATURE_INPUT_COLUMNS

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
FEATURES: tuple[str, ...] = (*EVENT_ROW, *HISTORY_FEATURES)

#: Stand-in for "no previous transaction": 30 days, in seconds.
NO_PREVIOUS_SECS = 30 * 86400.0
#: Night hours, where most card fraud happens: 22:00 to 03:59.
NIGHT_START, NIGHT_END = 22, 4


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
        .with_columns(row_features(EVENT_ROW))
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
