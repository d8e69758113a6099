"""The decision log: every decision the decision service or the stream consumer answered,
recorded durably before the answer leaves, and the system of record Dagster imports from.

One row per ``trans_num`` (the key makes a retry, a redelivery or two replicas deciding the
same transaction record it once: the first decision stands and is what every later answer
repeats). A row holds the transaction as it was decided on, the decision exactly as
``lib/serving.score_rows`` made it, who asked (``client``) and by which path (``decided_by``),
the server time, and the served feature row (``features_json``), so retraining learns from
decisions exactly as they were served.

Dagster's ``decisions_sensor`` plans a scoring run for every hour whose logged decisions are not
all in ``scored_transactions`` yet (``pending_hours``); the run imports them
(``import_hour``) with the served features to the lake. For event-time feeds the log is also
the card state's online part: a card's history includes the decisions made on it
(``lib/card_state.py``).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable

import orjson
import polars as pl

from fraud_assets.lib.lake import SERVED_PREFIX, content_key
from fraud_assets.lib.schema import SCORED_TRANSACTIONS_SCHEMA, TRANSACTION_SCHEMA
from fraud_assets.lib.serving import ScoredBatch, Scores, ServingModel
from fraud_assets.lib.storage import ObjectStore
from fraud_assets.lib.warehouse import Warehouse

LOG_TABLE = "decision_log"
SCORED_TABLE = "scored_transactions"
#: Paths that decide outside Dagster's runs.
LOGGED_PATHS = ("service", "stream")
DECISION_LOG_SCHEMA: dict[str, pl.DataType] = {
    **TRANSACTION_SCHEMA,
    **{c: t for c, t in SCORED_TRANSACTIONS_SCHEMA.items() if c not in TRANSACTION_SCHEMA},
    "client": pl.String(),  # the named client (HTTP) or the topic (stream)
    "server_ms": pl.Float64(),  # from the request's arrival to its decision, in the process
    "logged_at": pl.Datetime("ms"),
    "features_json": pl.String(),  # the served feature row
}
#: The log's columns in order: a log row in Python is a tuple of their values.
COLUMNS = tuple(DECISION_LOG_SCHEMA)
#: Where each column sits in a log row.
AT = {c: i for i, c in enumerate(COLUMNS)}
#: Rows imported per run at most; the rest are planned again at once.
IMPORT_LIMIT = 200_000


def ensure_log(wh: Warehouse) -> None:
    wh.ensure_table(LOG_TABLE, DECISION_LOG_SCHEMA, indexes=["batch_hour", "cc_num", "logged_at"])


def log_rows(
    rows: pl.DataFrame,
    batch: ScoredBatch,
    decided_by: str,
    clients: list[str],
    server_ms: list[float],
    logged_at: dt.datetime,
) -> pl.DataFrame:
    """The log rows of one scored batch: ``rows`` (canonical transactions, one per
    ``batch.scored`` row, in order) with their decisions and served features."""
    served = [c for c in batch.features.columns if c not in _FEATURE_KEYS]
    features = batch.features.select(pl.struct(served).struct.json_encode()).to_series()
    decided = batch.scored.drop([c for c in batch.scored.columns if c in rows.columns])
    frame = pl.concat([rows, decided], how="horizontal").with_columns(
        decided_by=pl.lit(decided_by),
        client=pl.Series(clients, dtype=pl.String),
        server_ms=pl.Series(server_ms, dtype=pl.Float64),
        logged_at=pl.lit(logged_at, dtype=pl.Datetime("ms")),
        features_json=features,
    )
    return frame.select(pl.col(c).cast(t) for c, t in DECISION_LOG_SCHEMA.items())


def vector_log_rows(
    rows: list[dict[str, object]],
    scores: Scores,
    model: ServingModel,
    semantics: str,
    decided_by: str,
    clients: list[str],
    server_ms: list[float],
    logged_at: dt.datetime,
    scored_at: dt.datetime,
) -> list[tuple]:
    """``log_rows`` for a batch scored by ``score_vectors``, as tuples of Python values in
    ``COLUMNS`` order: ``rows`` are the transactions (``TRANSACTION_SCHEMA`` values,
    ``arrived_at``, ``batch_hour``). Values are cast as the frame's schema would cast them
    (times to the millisecond), and the served features encoded as polars encodes them, so
    the log holds the same thing whichever path decided (the parity tests)."""
    fs = model.feature_set
    names = [n for n in fs.features if n not in _FEATURE_KEYS]
    features = zip(*(scores.features[n].to_list() for n in names), strict=True)
    decided = zip(
        scores.proba.tolist(),
        scores.expected_loss.tolist(),
        scores.flagged.tolist(),
        scores.thresholds.tolist(),
        clients,
        server_ms,
        strict=True,
    )
    fixed = {
        "event_time_source": semantics,
        "model_name": model.name,
        "model_version": str(model.version),
        "feature_set_version": fs.version,
        "feed_semantics": semantics,
        "scored_at": scored_at,
        "decided_by": decided_by,
        "logged_at": logged_at,
    }
    out = []
    for row, values, (proba, loss, flagged, threshold, client, ms) in zip(
        rows, features, decided, strict=True
    ):
        entry = {
            **row,
            **fixed,
            "label_is_fraud": row["is_fraud"],
            "fraud_probability": proba,
            "expected_loss": loss,
            "is_flagged": flagged,
            "threshold": threshold,
            "client": client,
            "server_ms": ms,
            "features_json": orjson.dumps(dict(zip(names, values, strict=True))).decode(),
        }
        out.append(tuple(None if (v := entry[c]) is None else cast(v) for c, cast in _CASTERS))
    return out


_FEATURE_KEYS = ("trans_num", "cc_num", "event_time")
_CASTS: dict[type[pl.DataType], Callable[[object], object]] = {
    pl.String: str,
    pl.Float64: float,
    pl.Int64: int,
    pl.Int8: int,
    pl.Boolean: bool,
    pl.Datetime: lambda t: t.replace(microsecond=t.microsecond // 1000 * 1000),
}
#: Each column with what casts a Python value as a frame of the column's dtype holds it.
_CASTERS = [(c, _CASTS[type(t)]) for c, t in DECISION_LOG_SCHEMA.items()]


def record_rows(wh: Warehouse, rows: list[tuple]) -> set[str]:
    """``record`` of log rows as tuples in ``COLUMNS`` order (distinct ``trans_num``)."""
    return wh.insert_new_rows(LOG_TABLE, COLUMNS, rows)


async def record_rows_async(wh: Warehouse, rows: list[tuple]) -> set[str]:
    """``record_rows`` from an event loop, which goes on while the write waits."""
    return await wh.insert_new_rows_async(LOG_TABLE, COLUMNS, rows)


def record(wh: Warehouse, frame: pl.DataFrame) -> set[str]:
    """Write the log rows in one transaction; return the ``trans_num`` that were new (the
    others were decided before, and their first decision stands)."""
    return wh.insert_new(LOG_TABLE, frame)


def read_logged(wh: Warehouse, trans_nums: list[str]) -> pl.DataFrame:
    """The logged decisions on ``trans_nums``."""
    return wh.read(LOG_TABLE, DECISION_LOG_SCHEMA, where={"trans_num": trans_nums})


def newest(wh: Warehouse) -> dt.datetime | None:
    """When the latest decision was logged (None while the log is empty or missing)."""
    if not wh.table_exists(LOG_TABLE):
        return None
    rows = wh.query(f"SELECT max(logged_at) FROM {{t:{LOG_TABLE}}}", {"at": pl.Datetime("ms")})
    return rows["at"][0] if rows.height else None


def stream_counts(wh: Warehouse, since: dt.datetime) -> tuple[int, int]:
    """Decisions the stream path logged: in all, and since ``since``."""
    if not wh.table_exists(LOG_TABLE):
        return 0, 0
    bound = since if wh.postgres else since.strftime("%Y-%m-%d %H:%M:%S.000")
    rows = wh.query(
        f"SELECT count(*), count(CASE WHEN logged_at >= ? THEN 1 END) FROM {{t:{LOG_TABLE}}} "
        "WHERE decided_by = ?",
        {"total": pl.Int64, "recent": pl.Int64},
        [bound, "stream"],
    )
    return int(rows["total"][0] or 0), int(rows["recent"][0] or 0)


def pending_hours(wh: Warehouse, hours: list[str]) -> dict[str, tuple[int, int]]:
    """Hours of ``hours`` with logged decisions not all in ``scored_transactions``:
    hour -> (decisions logged, of them imported)."""
    if not hours or not wh.table_exists(LOG_TABLE):
        return {}
    marks = ", ".join("?" for _ in hours)
    counts = {"batch_hour": pl.String, "n": pl.Int64}
    logged = wh.query(
        f"SELECT batch_hour, count(*) FROM {{t:{LOG_TABLE}}} WHERE batch_hour IN ({marks}) "
        "GROUP BY batch_hour",
        counts,
        hours,
    )
    imported = pl.DataFrame(schema=counts)
    if wh.table_exists(SCORED_TABLE):
        paths = ", ".join("?" for _ in LOGGED_PATHS)
        imported = wh.query(
            f"SELECT batch_hour, count(*) FROM {{t:{SCORED_TABLE}}} WHERE batch_hour IN "
            f"({marks}) AND decided_by IN ({paths}) GROUP BY batch_hour",
            counts,
            [*hours, *LOGGED_PATHS],
        )
    done = dict(imported.iter_rows())
    return {h: (n, done.get(h, 0)) for h, n in logged.iter_rows() if n > done.get(h, 0)}


def pending_rows(wh: Warehouse, hour: str, limit: int = IMPORT_LIMIT) -> pl.DataFrame:
    """Logged decisions of ``hour`` not in ``scored_transactions`` yet, oldest first."""
    if not wh.table_exists(LOG_TABLE):
        return pl.DataFrame(schema=DECISION_LOG_SCHEMA)
    columns = ", ".join(f'd."{c}"' for c in DECISION_LOG_SCHEMA)
    absent = ""
    if wh.table_exists(SCORED_TABLE):
        absent = (
            f" AND NOT EXISTS (SELECT 1 FROM {{t:{SCORED_TABLE}}} s "
            "WHERE s.trans_num = d.trans_num)"
        )
    return wh.query(
        f"SELECT {columns} FROM {{t:{LOG_TABLE}}} d WHERE d.batch_hour = ?{absent} "
        f"ORDER BY d.logged_at LIMIT {int(limit)}",
        DECISION_LOG_SCHEMA,
        [hour],
    )


def scored_of(logged: pl.DataFrame) -> pl.DataFrame:
    """Log rows as ``scored_transactions`` rows (the decision exactly as answered)."""
    return logged.select(pl.col(c).cast(t) for c, t in SCORED_TRANSACTIONS_SCHEMA.items())


def served_of(logged: pl.DataFrame) -> pl.DataFrame:
    """The served feature rows of log rows, as the ``served_features`` lake holds them."""
    features = pl.DataFrame(
        [json.loads(text) for text in logged["features_json"]], infer_schema_length=None
    )
    return pl.concat(
        [
            logged.select("trans_num", "cc_num", "event_time"),
            features.cast(pl.Float64),
            logged.select("model_version", "feature_set_version", "batch_hour", "scored_at"),
        ],
        how="horizontal",
    )


def import_hour(wh: Warehouse, store: ObjectStore, hour: str) -> pl.DataFrame:
    """The hour's logged decisions not imported yet, as ``scored_transactions`` rows; their
    served features go to the lake first (content-keyed, so a retry writes the same part)."""
    logged = pending_rows(wh, hour)
    if logged.height == 0:
        return scored_of(logged)
    for (version,), part in served_of(logged).group_by("model_version"):
        key = content_key(SERVED_PREFIX, hour, str(version), part["trans_num"].to_list())
        store.put_parquet(key, part)
    return scored_of(logged)
