"""Card profiles: what is still true about a card when the feed has no true event time.

A profile is a set of additive aggregates of a card's labelled history (count, sums, squares
and max of amounts, night-time counts, ...), per card and per card and category. Features
compare the row with its card's profile: amount against the card's norms, the card's
category habits, how new the category is for the card.

- **Serving** (``serving_features``): every row is compared with the profile frozen at the end
  of the training data, whatever order or density the rows arrive in.
- **Training** (``training_features``): each training row is compared with its card's profile
  as of ``lag`` before its own time, built from strictly earlier training rows only. The lag
  keeps a burst of fraud on one card from describing its own later rows, as live rows are
  never described by each other.

Both go through ``_cumulate`` (the aggregates) and ``_features`` (the comparison), so training
and serving compute the same thing. No label ever enters a profile.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Callable
from typing import Any

import polars as pl

from fraud_assets.lib.features.row import CLOCK_FREE, clock_free_vectors, row_features
from fraud_assets.lib.features.vectors import Vec

#: The category key of a card's all-category profile row.
ALL_CATEGORIES = "*"
#: An amount above this counts as a big purchase for the card's ``big_n``.
BIG_AMOUNT = 200.0
#: Night hours of the training data's true times: 22:00 to 03:59.
NIGHT_START, NIGHT_END = 22, 4
#: Columns of the labelled history a profile is built from (never ``is_fraud``).
PROFILE_INPUT: tuple[str, ...] = ("trans_num", "event_time", "cc_num", "category", "amt")
STATS: tuple[str, ...] = (
    "n",
    "amt_sum",
    "amt_sumsq",
    "log_sum",
    "log_sumsq",
    "amt_max",
    "night_n",
    "night_amt_sum",
    "big_n",
    "n_categories",
)
#: The keyed card-state table: one row per card (category "*") and per card and category.
PROFILE_SCHEMA: dict[str, pl.DataType] = {
    "profile_key": pl.String(),
    "cc_num": pl.String(),
    "category": pl.String(),
    **{s: pl.Float64() for s in STATS},
    "as_of": pl.Datetime("ms"),
}

PROFILE_FEATURES: tuple[str, ...] = (
    "card_tx_count",
    "amt_vs_card_mean",
    "amt_log_zscore",
    "amt_vs_card_max",
    "category_share",
    "is_new_category",
    "category_tx_count",
    "amt_vs_category_mean",
    "amt_log_zscore_category",
    "amt_zscore_category",
    "amt_vs_category_max",
    "card_night_share",
    "card_categories",
    "card_log_mean",
    "card_log_std",
    "card_big_share",
    "card_night_mean_amt",
)
FEATURES: tuple[str, ...] = (*CLOCK_FREE, *PROFILE_FEATURES)


def _cumulate(history: pl.DataFrame, level: str) -> pl.DataFrame:
    """Running (inclusive) aggregates after each history row, per card (``level="card"``) or
    per card and category, in time order: the state as of each row."""
    by = ["cc_num"] if level == "card" else ["cc_num", "category"]
    amt = pl.col("amt").cast(pl.Float64)
    log_amt = amt.log1p()
    hour = pl.col("event_time").dt.hour()
    night = ((hour >= NIGHT_START) | (hour < NIGHT_END)).cast(pl.Float64)
    first_in_category = pl.struct("category").is_first_distinct().over("cc_num")
    values = {
        "n": pl.col("trans_num").is_not_null().cast(pl.Float64),
        "amt_sum": amt,
        "amt_sumsq": amt.pow(2),
        "log_sum": log_amt,
        "log_sumsq": log_amt.pow(2),
        "night_n": night,
        "night_amt_sum": night * amt,
        "big_n": (amt > BIG_AMOUNT).cast(pl.Float64),
    }
    ordered = history.select(PROFILE_INPUT).sort("event_time", "trans_num")
    if level == "card":
        ordered = ordered.with_columns(_first=first_in_category.cast(pl.Float64))
    return ordered.select(
        "cc_num",
        pl.lit(ALL_CATEGORIES).alias("category") if level == "card" else pl.col("category"),
        "event_time",
        *(v.cum_sum().over(by).alias(k) for k, v in values.items()),
        amt.cum_max().over(by).alias("amt_max"),
        (
            pl.col("_first").cum_sum().over(by) if level == "card" else pl.lit(None, pl.Float64)
        ).alias("n_categories"),
    )


def build_profiles(history: pl.DataFrame, as_of: dt.datetime | None = None) -> pl.DataFrame:
    """The keyed card-state table: each card's profile after all of ``history``."""
    as_of = as_of or history["event_time"].max()
    frames = [
        _cumulate(history, level).group_by("cc_num", "category").last() for level in ("card", "x")
    ]
    return (
        pl.concat(frames)
        .with_columns(
            profile_key=pl.col("cc_num") + "/" + pl.col("category"),
            as_of=pl.lit(as_of, dtype=pl.Datetime("ms")),
        )
        .select(pl.col(c).cast(t) for c, t in PROFILE_SCHEMA.items())
        .sort("profile_key")
    )


def _prefixed(frame: pl.DataFrame, prefix: str) -> pl.DataFrame:
    return frame.select(
        "cc_num", "category", *(pl.col(s).alias(f"{prefix}{s}") for s in STATS), "event_time"
    )


def _formulas(col: Callable[[str], Any]) -> dict[str, Any]:
    """The row-against-profile features, from ``c_*`` (card) and ``k_*`` (card and category)
    aggregate columns; a card or category never seen gives the neutral value. Written once
    for both column kinds: ``col`` is ``pl.col`` (expressions) or a ``Vec`` getter (numpy)."""
    amt = col("amt").cast(pl.Float64)
    log_amt = amt.log1p()

    means: dict[tuple[str, str], Any] = {}  # each mean computed once, whoever reads it
    stds: dict[str, Any] = {}

    def mean(p: str, stat: str) -> Any:
        if (p, stat) not in means:
            means[p, stat] = col(f"{p}{stat}") / col(f"{p}n")
        return means[p, stat]

    def std(p: str, total: str, squares: str) -> Any:
        if p + total not in stds:
            stds[p + total] = (mean(p, squares) - mean(p, total).pow(2)).clip(0.0).sqrt()
        return stds[p + total]

    c_n, k_n = col("c_n").fill_null(0.0), col("k_n").fill_null(0.0)
    return {
        "card_tx_count": c_n,
        "amt_vs_card_mean": (amt / mean("c_", "amt_sum").clip(lower_bound=1.0)).fill_null(1.0),
        "amt_log_zscore": (
            (log_amt - mean("c_", "log_sum")) / std("c_", "log_sum", "log_sumsq").clip(0.1)
        ).fill_null(0.0),
        "amt_vs_card_max": (amt / col("c_amt_max").clip(lower_bound=1.0)).fill_null(1.0),
        "category_share": k_n / c_n.clip(lower_bound=1.0),
        "is_new_category": (k_n == 0).cast(pl.Int8),
        "category_tx_count": k_n,
        "amt_vs_category_mean": (amt / mean("k_", "amt_sum").clip(lower_bound=1.0)).fill_null(1.0),
        "amt_log_zscore_category": (
            (log_amt - mean("k_", "log_sum")) / std("k_", "log_sum", "log_sumsq").clip(0.1)
        ).fill_null(0.0),
        "amt_zscore_category": (
            (amt - mean("k_", "amt_sum")) / std("k_", "amt_sum", "amt_sumsq").clip(1.0)
        ).fill_null(0.0),
        "amt_vs_category_max": (amt / col("k_amt_max").clip(lower_bound=1.0)).fill_null(1.0),
        "card_night_share": mean("c_", "night_n").fill_null(0.0),
        "card_categories": col("c_n_categories").fill_null(0.0),
        "card_log_mean": mean("c_", "log_sum").fill_null(0.0),
        "card_log_std": std("c_", "log_sum", "log_sumsq").fill_null(0.0),
        "card_big_share": mean("c_", "big_n").fill_null(0.0),
        "card_night_mean_amt": (
            col("c_night_amt_sum") / col("c_night_n").clip(lower_bound=1.0)
        ).fill_null(0.0),
    }


@functools.cache
def _features() -> tuple[pl.Expr, ...]:
    """The profile features as polars expressions (built once)."""
    exprs = _formulas(pl.col)
    return tuple(exprs[name].alias(name) for name in PROFILE_FEATURES)


def _finish(joined: pl.DataFrame) -> pl.DataFrame:
    return joined.sort("_row").select(
        "trans_num", "cc_num", "event_time", *row_features(CLOCK_FREE), *_features()
    )


def serving_features(rows: pl.DataFrame, profiles: pl.DataFrame) -> pl.DataFrame:
    """Features of ``rows`` against the frozen ``profiles`` (``PROFILE_SCHEMA``), whatever the
    rows' times, order or number. Returns ``trans_num``, ``cc_num``, ``event_time`` and every
    feature, in input row order."""
    base = rows.with_row_index("_row")
    cards = profiles.filter(pl.col("category") == ALL_CATEGORIES)
    per_cat = profiles.filter(pl.col("category") != ALL_CATEGORIES)
    joined = base.join(
        _prefixed(cards.with_columns(event_time=pl.col("as_of")), "c_").drop(
            "category", "event_time"
        ),
        on="cc_num",
        how="left",
    ).join(
        _prefixed(per_cat.with_columns(event_time=pl.col("as_of")), "k_").drop("event_time"),
        on=["cc_num", "category"],
        how="left",
    )
    return _finish(joined)


def training_features(rows: pl.DataFrame, lag: dt.timedelta) -> pl.DataFrame:
    """Features of labelled ``rows`` against their card's profile as of ``lag`` before each
    row, from strictly earlier ``rows``. Returns the same columns as ``serving_features``."""
    base = rows.with_row_index("_row").with_columns(
        _as_of=pl.col("event_time") - pl.lit(lag, dtype=pl.Duration("ms"))
    )
    joined = base.sort("_as_of")
    for level, prefix, by in (("card", "c_", ["cc_num"]), ("x", "k_", ["cc_num", "category"])):
        timeline = _prefixed(_cumulate(rows, level), prefix).sort("event_time")
        if level == "card":
            timeline = timeline.drop("category")
        joined = joined.join_asof(
            timeline.rename({"event_time": "_state_time"}),
            left_on="_as_of",
            right_on="_state_time",
            by=by,
            strategy="backward",
            allow_exact_matches=False,
            check_sortedness=False,
        ).drop("_state_time")
    return _finish(joined)


def serving_vectors(rows: dict[str, list], profiles: dict[str, dict[str, tuple]]) -> dict[str, Vec]:
    """``serving_features`` for a small batch, in Python: ``rows`` are columns of Python values
    (``cc_num``, ``category``, ``amt`` and the row features' inputs) and ``profiles`` each
    card's ``profile_rows`` (a card with none may be absent). The same formulas as the polars
    path (``_formulas``, ``row.clock_free_vectors``), held identical to it by the parity
    tests. Returns every feature, by name."""
    cards = {card: profiles.get(card) or {} for card in set(rows["cc_num"])}
    blank = (None,) * len(PROFILE_SCHEMA)
    found = []  # each row's (card profile, card-and-category profile), blank when never seen
    for card, category in zip(rows["cc_num"], rows["category"], strict=True):
        by_category = cards[card]
        card_row = by_category.get(ALL_CATEGORIES, blank)
        own = blank if category == ALL_CATEGORIES else by_category.get(category, blank)
        found.append((card_row, own))
    columns = {}
    for side, prefix in ((0, "c_"), (1, "k_")):
        for s in STATS:
            i = _STAT_INDEX[s]
            columns[f"{prefix}{s}"] = Vec.of([pair[side][i] for pair in found])
    columns["amt"] = Vec.of(rows["amt"])
    profile = _formulas(columns.__getitem__)
    return {**clock_free_vectors(rows), **{name: profile[name] for name in PROFILE_FEATURES}}


#: Where each profile column sits in a ``PROFILE_SCHEMA`` row.
_STAT_INDEX = {name: i for i, name in enumerate(PROFILE_SCHEMA)}
_CATEGORY_INDEX = _STAT_INDEX["category"]


def profile_rows(frame: pl.DataFrame | None) -> dict[str, tuple]:
    """A card's profile rows (``PROFILE_SCHEMA`` order) by category."""
    if frame is None or frame.height == 0:
        return {}
    if frame.columns != list(PROFILE_SCHEMA):
        frame = frame.select(PROFILE_SCHEMA)
    return {row[_CATEGORY_INDEX]: row for row in frame.rows()}
