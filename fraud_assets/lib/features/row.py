"""Features of the transaction row itself.

``CLOCK_FREE`` features read nothing but the row's own columns, so they hold under any feed.
``CLOCK`` features read the event time, so they are only valid when the feed carries a true
event time (``payload`` semantics).
"""

from __future__ import annotations

import datetime as dt
import functools
import re

import polars as pl

from fraud_assets.lib.features.vectors import Vec
from fraud_assets.lib.schema import CATEGORIES

_EARTH_RADIUS_KM = 6371.0
_CATEGORY_CODES = {c: i for i, c in enumerate(CATEGORIES)}
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")

CATEGORY_INDICATORS: tuple[str, ...] = tuple(f"is_{c}" for c in CATEGORIES)

#: Valid under any feed: nothing here reads a clock.
CLOCK_FREE: tuple[str, ...] = (
    "amt",
    "log_amt",
    "category_code",
    "gender_male",
    "birth_year",
    "log_city_pop",
    # One indicator per category: a forest splits on these far better than on an ordinal code.
    *CATEGORY_INDICATORS,
)

#: The event-time feature set's row features (features v2), kept exactly as they were.
EVENT_ROW: tuple[str, ...] = (
    "amt",
    "log_amt",
    "category_code",
    "hour",
    "day_of_week",
    "age_years",
    "gender_male",
    "log_city_pop",
    "distance_km",
    *CATEGORY_INDICATORS,
)


def _haversine_km() -> pl.Expr:
    lat1, lon1 = pl.col("lat").radians(), pl.col("long").radians()
    lat2, lon2 = pl.col("merch_lat").radians(), pl.col("merch_long").radians()
    a = ((lat2 - lat1) / 2).sin() ** 2 + lat1.cos() * lat2.cos() * ((lon2 - lon1) / 2).sin() ** 2
    return 2 * _EARTH_RADIUS_KM * a.sqrt().arcsin()


def _expressions() -> dict[str, pl.Expr]:
    dob = pl.col("dob").str.to_date("%Y-%m-%d", strict=False)
    age_days = (pl.col("event_time").dt.date() - dob).dt.total_days()
    category_code = pl.col("category").replace_strict(
        _CATEGORY_CODES, default=-1, return_dtype=pl.Int32
    )
    return {
        "amt": pl.col("amt").cast(pl.Float64),
        "log_amt": pl.col("amt").cast(pl.Float64).log1p(),
        "category_code": category_code,
        "hour": pl.col("event_time").dt.hour().cast(pl.Int32),
        "day_of_week": (pl.col("event_time").dt.weekday() - 1).cast(pl.Int32),
        "age_years": age_days / 365.25,
        "gender_male": (pl.col("gender") == "M").cast(pl.Int8),
        "birth_year": dob.dt.year().cast(pl.Int32),
        "log_city_pop": pl.col("city_pop").cast(pl.Float64).log1p(),
        "distance_km": _haversine_km(),
        **{f"is_{c}": (pl.col("category") == c).cast(pl.Int8) for c in CATEGORIES},
    }


@functools.cache
def row_features(names: tuple[str, ...]) -> tuple[pl.Expr, ...]:
    """Expressions for the named row features, in order (built once: expressions are
    immutable, and building them costs more than a small batch's query)."""
    exprs = _expressions()
    return tuple(exprs[name].alias(name) for name in names)


def clock_free_vectors(rows: dict[str, list]) -> dict[str, Vec]:
    """The ``CLOCK_FREE`` features of a few rows (columns of Python values) on numpy, as
    ``row_features(CLOCK_FREE)`` computes them in polars (held identical by the parity
    tests): an unknown or missing category is code -1, other nulls stay null."""
    amt = Vec.of(rows["amt"]).cast(pl.Float64)
    category, gender = rows["category"], rows["gender"]
    out = {
        "amt": amt,
        "log_amt": amt.log1p(),
        "category_code": Vec.of([_CATEGORY_CODES.get(c, -1) for c in category], dtype="int32"),
        "gender_male": Vec.of([None if g is None else int(g == "M") for g in gender], "int8"),
        "birth_year": Vec.of([_birth_year(d) for d in rows["dob"]], dtype="int32"),
        "log_city_pop": Vec.of(rows["city_pop"]).cast(pl.Float64).log1p(),
    }
    for c in CATEGORIES:
        out[f"is_{c}"] = Vec.of([None if k is None else int(k == c) for k in category], "int8")
    return {name: out[name] for name in CLOCK_FREE}


def _birth_year(dob: object) -> int | None:
    """The year of a ``YYYY-MM-DD`` date, None for anything else (polars' non-strict parse)."""
    if not isinstance(dob, str) or not _DATE.fullmatch(dob):
        return None
    try:
        return dt.date.fromisoformat(dob).year
    except ValueError:
        return None
