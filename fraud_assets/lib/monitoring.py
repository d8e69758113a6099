"""Monitoring decisions: delayed labels, live performance, drift, freshness, completeness.

Labels reach monitoring only after a configurable delay (``label_delay``), as real chargebacks
would, and an analyst's verdict overrides the API's label. Everything here is pure: the
Dagster assets and checks in ``defs/monitoring`` only read, call and write.
"""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass

import numpy as np
import polars as pl

from fraud_assets.lib.decision import review_cost_of
from fraud_assets.lib.metrics import ranking
from fraud_assets.lib.schema import (
    ANALYST_LABELS_SCHEMA,
    FEATURE_DRIFT_SCHEMA,
    LIVE_PERFORMANCE_SCHEMA,
    SCORED_TRANSACTIONS_SCHEMA,
)
from fraud_assets.lib.warehouse import Warehouse

#: PSI above this is drift (0.1 "some shift", 0.25 "significant" by the usual reading).
PSI_THRESHOLD = 0.25
#: A check of flag rate needs at least this many rows in its window.
MIN_ROWS = 200


def with_labels(
    scored: pl.DataFrame, verdicts: pl.DataFrame, now: dt.datetime, delay: dt.timedelta
) -> pl.DataFrame:
    """``scored`` with ``label``: the analyst's verdict when there is one, else the API's
    label once ``delay`` has passed since the row arrived, else null."""
    arrived = pl.coalesce("arrived_at", "scored_at")
    api = pl.when(arrived <= pl.lit(now - delay)).then(pl.col("label_is_fraud"))
    return (
        scored.join(
            verdicts.select("trans_num", verdict=pl.col("is_fraud").cast(pl.Int8)),
            on="trans_num",
            how="left",
        )
        .with_columns(
            label=pl.coalesce("verdict", api).cast(pl.Int8),
            label_source=pl.when(pl.col("verdict").is_not_null())
            .then(pl.lit("analyst"))
            .when(api.is_not_null())
            .then(pl.lit("api")),
        )
        .drop("verdict")
    )


def daily_performance(
    labelled: pl.DataFrame, review_cost: float, computed_at: dt.datetime
) -> pl.DataFrame:
    """One row per arrival day and model version (``LIVE_PERFORMANCE_SCHEMA``)."""
    if labelled.height == 0:
        return pl.DataFrame(schema=LIVE_PERFORMANCE_SCHEMA)
    day = pl.coalesce("arrived_at", "scored_at").dt.strftime("%Y-%m-%d")
    rows = []
    for (d, version), part in labelled.with_columns(day=day).group_by(
        "day", "model_version", maintain_order=True
    ):
        rows.append(_figures(part, d, version, review_cost, computed_at))
    return pl.DataFrame(rows, schema=LIVE_PERFORMANCE_SCHEMA).sort("day", "model_version")


def _figures(
    part: pl.DataFrame, day: str, version: str, review_cost: float, at: dt.datetime
) -> dict[str, object]:
    known = part.filter(pl.col("label").is_not_null())
    y = known["label"].to_numpy()
    flagged = known["is_flagged"].to_numpy()
    tp = int(np.sum(flagged & (y == 1)))
    ap, _ = ranking(y, known["fraud_probability"].to_numpy())
    return {
        "perf_key": f"{day}/{version}",
        "day": day,
        "model_version": version,
        "rows": part.height,
        "labelled": known.height,
        "frauds": int(y.sum()),
        "flagged": int(part["is_flagged"].sum()),
        "precision": tp / flagged.sum() if flagged.sum() else None,
        "recall": tp / y.sum() if y.sum() else None,
        "ap": None if np.isnan(ap) else ap,
        "flag_rate": float(part["is_flagged"].mean()),
        "fraud_rate": float(y.mean()) if len(y) else None,
        "cost": review_cost_of(y, flagged, known["amt"].to_numpy(), review_cost)
        if len(y)
        else None,
        "computed_at": at,
    }


@dataclass(frozen=True)
class Verdict:
    """A check's outcome: passed, why, and the figures behind it."""

    passed: bool
    reason: str
    figures: dict[str, float]


def flag_rate_check(flagged: int, rows: int, expected: float) -> Verdict:
    """Whether the flag rate of ``rows`` is within the bounds learned at training: a third to
    three times the validation flag rate ``expected``, each widened by 3 binomial standard
    errors at that rate for this many rows."""
    if rows < MIN_ROWS:
        return Verdict(
            True, f"only {rows} rows scored in the window (need {MIN_ROWS})", {"rows": rows}
        )
    rate = flagged / rows

    def noise(p: float) -> float:
        return 3 * float(np.sqrt(max(p * (1 - p), 1e-12) / rows))

    low = max(expected / 3 - noise(expected / 3), 0.0)
    high = expected * 3 + noise(expected * 3)
    ok = bool(low <= rate <= high)
    return Verdict(
        ok,
        f"flag rate {rate:.4f} over {rows} rows is {'within' if ok else 'outside'} "
        f"[{low:.4f}, {high:.4f}] (validation flag rate {expected:.4f})",
        {"flag_rate": rate, "low": low, "high": high, "rows": rows, "expected": expected},
    )


def performance_check(
    labelled: pl.DataFrame, expected_precision: float, expected_recall: float, min_frauds: int = 5
) -> Verdict:
    """Whether labels say the model is failing: precision or recall below half of what the
    validation window showed, once ``min_frauds`` labelled frauds are in the window."""
    known = labelled.filter(pl.col("label").is_not_null())
    y, flagged = known["label"].to_numpy(), known["is_flagged"].to_numpy()
    frauds = int(y.sum())
    if frauds < min_frauds:
        return Verdict(
            True, f"{frauds} labelled frauds in the window (need {min_frauds})", {"frauds": frauds}
        )
    tp = int(np.sum(flagged & (y == 1)))
    precision = tp / max(int(flagged.sum()), 1)
    recall = tp / frauds
    ok = bool(precision >= expected_precision / 2 and recall >= expected_recall / 2)
    return Verdict(
        ok,
        f"live precision {precision:.3f} / recall {recall:.3f} on {known.height} labelled rows "
        f"({frauds} frauds) against validation {expected_precision:.3f} / "
        f"{expected_recall:.3f}: {'holding' if ok else 'failing'}",
        {"precision": precision, "recall": recall, "frauds": frauds, "labelled": known.height},
    )


def psi(reference: pl.DataFrame, current: pl.DataFrame, columns: list[str]) -> dict[str, float]:
    """PSI of each numeric column, current against reference, with evidently's PSI test."""
    os.environ.setdefault("DO_NOT_TRACK", "1")  # evidently: no telemetry
    from evidently.legacy.calculations.stattests import psi_stat_test
    from evidently.legacy.calculations.stattests.registry import get_stattest
    from evidently.legacy.core import ColumnType

    out: dict[str, float] = {}
    for col in columns:
        ref = reference[col].cast(pl.Float64).drop_nulls().to_pandas()
        cur = current[col].cast(pl.Float64).drop_nulls().to_pandas()
        if len(ref) == 0 or len(cur) == 0:
            continue
        kind = ColumnType.Categorical if ref.nunique() <= 2 else ColumnType.Numerical
        test = get_stattest(ref, cur, kind, psi_stat_test)
        out[col] = float(test(ref, cur, kind, PSI_THRESHOLD).drift_score)
    return out


def drift_rows(
    scores: dict[str, float],
    version: str,
    run_id: str,
    at: dt.datetime,
    ref_rows: int,
    cur_rows: int,
) -> pl.DataFrame:
    """The ``feature_drift`` rows of one run."""
    return pl.DataFrame(
        [
            {
                "drift_key": f"{run_id}/{name}",
                "computed_at": at,
                "model_version": version,
                "feature": name,
                "psi": value,
                "drifted": value >= PSI_THRESHOLD,
                "reference_rows": ref_rows,
                "current_rows": cur_rows,
            }
            for name, value in scores.items()
        ],
        schema=FEATURE_DRIFT_SCHEMA,
    )


def drift_check(scores: dict[str, float], current_rows: int) -> Verdict:
    """Whether every feature and the score stay under the PSI threshold."""
    if current_rows < MIN_ROWS:
        return Verdict(
            True, f"only {current_rows} live rows (need {MIN_ROWS})", {"rows": current_rows}
        )
    ranked = sorted(scores.items(), key=lambda kv: -kv[1])
    drifted = [(k, v) for k, v in ranked if v >= PSI_THRESHOLD]
    named = ", ".join(f"{k} {v:.3f}" for k, v in (drifted or ranked[:1])[:8])
    return Verdict(
        not drifted,
        f"{len(drifted)} of {len(scores)} drifted (PSI >= {PSI_THRESHOLD})"
        + (f": {named}" if drifted else f"; largest {named}" if named else ""),
        {"drifted": len(drifted), "max_psi": ranked[0][1] if ranked else 0.0},
    )


def freshness_check(newest: dt.datetime | None, now: dt.datetime, minutes: int) -> Verdict:
    """Whether a payload landed in the last ``minutes``."""
    if newest is None:
        return Verdict(False, "no payload has ever landed", {})
    age = (now - newest).total_seconds() / 60
    ok = age <= minutes
    return Verdict(
        ok, f"newest payload landed {age:.1f} min ago (limit {minutes} min)", {"age_minutes": age}
    )


def completeness_check(unscored: int, live: int, version: str) -> Verdict:
    """Whether every live row of the window is scored by the current champion."""
    return Verdict(
        unscored == 0,
        f"{unscored} of {live} live rows are not scored by champion v{version}"
        + (": re-score them with a backfill of scored_transactions" if unscored else ""),
        {"unscored": unscored, "live": live},
    )


def labelled_served_rows(
    served: pl.DataFrame,
    labelled: pl.DataFrame,
    feature_set_version: str,
) -> pl.DataFrame:
    """Live rows exactly as they were served, with their label, for training: the latest
    served feature row of each transaction under ``feature_set_version`` (from the
    ``served_features`` lake), joined to ``labelled`` (``with_labels``: ``trans_num``,
    ``arrived_at``, ``label``) where a label is known. ``event_time`` becomes the arrival."""
    if served.height == 0 or labelled.height == 0:
        return pl.DataFrame()
    rows = served.filter(pl.col("feature_set_version") == feature_set_version)
    if "scored_at" in rows.columns:
        rows = rows.sort("scored_at")
    rows = rows.unique("trans_num", keep="last")
    labels = (
        labelled.filter(pl.col("label").is_not_null())
        .select("trans_num", arrival=pl.coalesce("arrived_at", "scored_at"), is_fraud="label")
        .unique("trans_num", keep="last")
    )
    return (
        rows.join(labels, on="trans_num")
        .with_columns(event_time=pl.col("arrival"), is_fraud=pl.col("is_fraud").cast(pl.Int8))
        .drop("arrival")
        .sort("event_time", "trans_num")
    )


def recent_scored(wh: Warehouse, since: dt.datetime) -> pl.DataFrame:
    """Scored rows that arrived since ``since``."""
    return wh.read_since("scored_transactions", SCORED_TRANSACTIONS_SCHEMA, "arrived_at", since)


def verdicts(wh: Warehouse, trans_nums: list[str]) -> pl.DataFrame:
    """Analyst verdicts on ``trans_nums``."""
    return wh.read("analyst_labels", ANALYST_LABELS_SCHEMA, where={"trans_num": trans_nums})


def labelled_recent(
    wh: Warehouse, now: dt.datetime, window: dt.timedelta, delay: dt.timedelta
) -> pl.DataFrame:
    """Recent scored rows with the labels known now (``with_labels``)."""
    scored = recent_scored(wh, now - window)
    return with_labels(scored, verdicts(wh, scored["trans_num"].to_list()), now, delay)
