"""Column contracts: the public training CSV, the transactions API, and our canonical frame."""

from __future__ import annotations

import polars as pl

CATEGORIES: tuple[str, ...] = (
    "entertainment",
    "food_dining",
    "gas_transport",
    "grocery_net",
    "grocery_pos",
    "health_fitness",
    "home",
    "kids_pets",
    "misc_net",
    "misc_pos",
    "personal_care",
    "shopping_net",
    "shopping_pos",
    "travel",
)

#: Columns of one API row, in the order the API sends them.
API_COLUMNS: tuple[str, ...] = (
    "cc_num",
    "merchant",
    "category",
    "amt",
    "first",
    "last",
    "gender",
    "street",
    "city",
    "state",
    "zip",
    "lat",
    "long",
    "city_pop",
    "job",
    "dob",
    "trans_num",
    "merch_lat",
    "merch_long",
    "is_fraud",
    "current_time",
)

#: The canonical transaction frame every asset passes on. ``cc_num`` is a string so that
#: 19-digit card numbers survive; ``event_time`` is naive UTC.
TRANSACTION_SCHEMA: dict[str, pl.DataType] = {
    "trans_num": pl.String(),
    "event_time": pl.Datetime("ms"),
    "cc_num": pl.String(),
    "merchant": pl.String(),
    "category": pl.String(),
    "amt": pl.Float64(),
    "first": pl.String(),
    "last": pl.String(),
    "gender": pl.String(),
    "street": pl.String(),
    "city": pl.String(),
    "state": pl.String(),
    "zip": pl.Int64(),
    "lat": pl.Float64(),
    "long": pl.Float64(),
    "city_pop": pl.Int64(),
    "job": pl.String(),
    "dob": pl.String(),
    "merch_lat": pl.Float64(),
    "merch_long": pl.Float64(),
    "is_fraud": pl.Int8(),
}

#: The training CSV's columns, in file order, with the dtypes used to read them, so nothing is
#: guessed (cc_num above all). The first column is an unnamed row index.
TRAINING_CSV_DTYPES: dict[str, pl.DataType] = {
    "": pl.Int64(),
    "trans_date_trans_time": pl.String(),
    "cc_num": pl.String(),
    "merchant": pl.String(),
    "category": pl.String(),
    "amt": pl.Float64(),
    "first": pl.String(),
    "last": pl.String(),
    "gender": pl.String(),
    "street": pl.String(),
    "city": pl.String(),
    "state": pl.String(),
    "zip": pl.Int64(),
    "lat": pl.Float64(),
    "long": pl.Float64(),
    "city_pop": pl.Int64(),
    "job": pl.String(),
    "dob": pl.String(),
    "trans_num": pl.String(),
    "unix_time": pl.Int64(),
    "merch_lat": pl.Float64(),
    "merch_long": pl.Float64(),
    "is_fraud": pl.Int8(),
}

#: Header of fraudTrain.csv / fraudTest.csv.
TRAINING_CSV_COLUMNS: tuple[str, ...] = tuple(TRAINING_CSV_DTYPES)


class SchemaError(ValueError):
    """Data does not match the expected layout; the message says how."""


def empty_transactions() -> pl.DataFrame:
    """An empty canonical frame."""
    return pl.DataFrame(schema=TRANSACTION_SCHEMA)


def to_canonical(df: pl.DataFrame) -> pl.DataFrame:
    """Select and cast the canonical columns; raise SchemaError naming any that are missing."""
    missing = [c for c in TRANSACTION_SCHEMA if c not in df.columns]
    if missing:
        raise SchemaError(f"missing columns: {', '.join(missing)}")
    try:
        return df.select(pl.col(c).cast(t, strict=True) for c, t in TRANSACTION_SCHEMA.items())
    except (pl.exceptions.InvalidOperationError, pl.exceptions.ComputeError) as exc:
        raise SchemaError(f"column types do not match the contract: {exc}") from exc


def validate_transactions(df: pl.DataFrame) -> pl.Series:
    """Return a per-row reason string (null when the row is valid) for a canonical frame."""
    checks: list[tuple[pl.Expr, str]] = [
        (pl.col("trans_num").fill_null("").str.len_chars() == 0, "no trans_num"),
        (~pl.col("cc_num").str.contains(r"^\d{8,19}$").fill_null(False), "cc_num not 8-19 digits"),
        (pl.col("event_time").is_null(), "no event time"),
        (pl.col("amt").is_null() | (pl.col("amt") < 0), "amount missing or negative"),
        (~pl.col("category").is_in(CATEGORIES).fill_null(False), "unknown category"),
        (~pl.col("lat").is_between(-90, 90).fill_null(False), "lat out of range"),
        (~pl.col("long").is_between(-180, 180).fill_null(False), "long out of range"),
        (~pl.col("merch_lat").is_between(-90, 90).fill_null(False), "merch_lat out of range"),
        (~pl.col("merch_long").is_between(-180, 180).fill_null(False), "merch_long out of range"),
        (pl.col("dob").str.to_date("%Y-%m-%d", strict=False).is_null(), "dob not YYYY-MM-DD"),
    ]
    reason = pl.lit(None, dtype=pl.String)
    for bad, why in reversed(checks):
        reason = pl.when(bad).then(pl.lit(why)).otherwise(reason)
    return df.select(reason.alias("reason")).to_series()


def training_csv_to_canonical(df: pl.DataFrame) -> pl.DataFrame:
    """Turn a frame read from the public training CSV into the canonical frame."""
    missing = [c for c in TRAINING_CSV_COLUMNS[1:] if c not in df.columns]
    if missing:
        raise SchemaError(f"training CSV lacks columns: {', '.join(missing)}")
    parsed = df.with_columns(
        event_time=pl.col("trans_date_trans_time").str.to_datetime(
            "%Y-%m-%d %H:%M:%S", time_unit="ms", strict=False
        )
    )
    bad = parsed.filter(pl.col("event_time").is_null())
    if bad.height:
        sample = bad["trans_date_trans_time"].head(3).to_list()
        raise SchemaError(f"{bad.height} rows have an unparseable trans_date_trans_time: {sample}")
    return to_canonical(parsed)


def read_training_csv(source) -> pl.DataFrame:  # noqa: ANN001 - path or file-like
    """Read a CSV in the public layout (plain or gzip) into the canonical frame."""
    df = pl.read_csv(source, schema_overrides=TRAINING_CSV_DTYPES, infer_schema_length=0)
    return training_csv_to_canonical(df)


#: Warehouse table of everything the API brought, one row per ``trans_num``.
LIVE_TRANSACTIONS_SCHEMA: dict[str, pl.DataType] = {
    **TRANSACTION_SCHEMA,
    "batch_hour": pl.String(),
    "arrived_at": pl.Datetime("ms"),
    "event_time_source": pl.String(),  # "payload" (the feed's own event time) or "arrival"
    "payload_key": pl.String(),
    "row_hash": pl.String(),  # the transaction's content, to tell a repeat from a conflict
}

#: Warehouse table of scored rows. ``label_is_fraud`` is the API's delayed label, kept for
#: monitoring only; it is never a model input.
SCORED_TRANSACTIONS_SCHEMA: dict[str, pl.DataType] = {
    **{
        c: TRANSACTION_SCHEMA[c]
        for c in ("trans_num", "event_time", "cc_num", "merchant", "category", "amt")
    },
    "event_time_source": pl.String(),
    "arrived_at": pl.Datetime("ms"),
    "fraud_probability": pl.Float64(),  # calibrated
    "expected_loss": pl.Float64(),  # fraud_probability x amt
    "is_flagged": pl.Boolean(),
    "threshold": pl.Float64(),  # the probability at or above which a row of this amount is flagged
    "model_name": pl.String(),
    "model_version": pl.String(),
    "feature_set_version": pl.String(),
    "feed_semantics": pl.String(),
    "scored_at": pl.Datetime("ms"),
    "label_is_fraud": pl.Int8(),
    "batch_hour": pl.String(),
    #: Which path decided: "poll" (a Dagster scoring run of the polled API), "service" (the
    #: decision service, over HTTP) or "stream" (the stream consumer); imported from the log.
    "decided_by": pl.String(),
}

#: Warehouse table of the label analysts' verdicts give each scored transaction, one row per
#: ``trans_num``: the latest verdict, confirmed fraud (1) or not fraud (0), by whom and when.
ANALYST_LABELS_SCHEMA: dict[str, pl.DataType] = {
    "trans_num": pl.String(),
    "is_fraud": pl.Int8(),
    "analyst": pl.String(),
    "labelled_at": pl.Datetime("ms"),
}

#: Every verdict ever given, append-only (key ``verdict_id``): history is never overwritten.
ANALYST_VERDICTS_SCHEMA: dict[str, pl.DataType] = {
    "verdict_id": pl.String(),
    **ANALYST_LABELS_SCHEMA,
}

#: Live performance, one row per day and model version (key ``perf_key`` = "<day>/<version>"),
#: recomputed as delayed labels arrive; every figure is kept for trends.
LIVE_PERFORMANCE_SCHEMA: dict[str, pl.DataType] = {
    "perf_key": pl.String(),
    "day": pl.String(),  # YYYY-MM-DD of arrival (UTC)
    "model_version": pl.String(),
    "rows": pl.Int64(),
    "labelled": pl.Int64(),
    "frauds": pl.Int64(),
    "flagged": pl.Int64(),
    "precision": pl.Float64(),
    "recall": pl.Float64(),
    "ap": pl.Float64(),
    "flag_rate": pl.Float64(),
    "fraud_rate": pl.Float64(),
    "cost": pl.Float64(),
    "computed_at": pl.Datetime("ms"),
}

#: Feature drift, one row per run and feature (key ``drift_key`` = "<run id>/<feature>"):
#: PSI of live data against the champion's training reference; every run is kept.
FEATURE_DRIFT_SCHEMA: dict[str, pl.DataType] = {
    "drift_key": pl.String(),
    "computed_at": pl.Datetime("ms"),
    "model_version": pl.String(),
    "feature": pl.String(),  # a model feature, or "fraud_probability" for the score
    "psi": pl.Float64(),
    "drifted": pl.Boolean(),
    "reference_rows": pl.Int64(),
    "current_rows": pl.Int64(),
}

#: Alerts raised, one per condition and window (key ``alert_key`` = "<condition>/<window>").
ALERTS_SCHEMA: dict[str, pl.DataType] = {
    "alert_key": pl.String(),
    "condition": pl.String(),
    "window_start": pl.Datetime("ms"),
    "raised_at": pl.Datetime("ms"),
    "severity": pl.String(),
    "message": pl.String(),
    "sink": pl.String(),  # "webhook" or "log"
    "delivered": pl.Boolean(),
}

#: Columns the feature code reads; everything else (labels, names, ids) never reaches a model.
FEATURE_INPUT_COLUMNS: tuple[str, ...] = (
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

#: The card history an event-time feed's features read: training rows, by card.
CARD_HISTORY_SCHEMA: dict[str, pl.DataType] = {
    c: TRANSACTION_SCHEMA[c] for c in FEATURE_INPUT_COLUMNS
}

TABLE_SCHEMAS: dict[str, dict[str, pl.DataType]] = {
    "live_transactions": LIVE_TRANSACTIONS_SCHEMA,
    "scored_transactions": SCORED_TRANSACTIONS_SCHEMA,
    "analyst_labels": ANALYST_LABELS_SCHEMA,
    "card_history": CARD_HISTORY_SCHEMA,
    "live_performance": LIVE_PERFORMANCE_SCHEMA,
    "feature_drift": FEATURE_DRIFT_SCHEMA,
    "alerts": ALERTS_SCHEMA,
}
