"""The one serving path: card-state lookup, features, predict, calibrate, decide.

``score_rows`` is what ``scored_transactions``, the web app's manual scoring and the evaluation
protocols call, so the three cannot drift apart. Rows come in as parsed, validated canonical
transactions (``lib/landing.py`` parses API payloads); the card state comes from a
``CardStateSource``, a keyed store that returns only the batch's own cards.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import polars as pl

from fraud_assets.lib.calibration import Calibration
from fraud_assets.lib.decision import DecisionRule
from fraud_assets.lib.features import FeatureSet, for_semantics
from fraud_assets.lib.features.vectors import Vec
from fraud_assets.lib.model import predict_raw
from fraud_assets.lib.runtime import FastPredictor, NotCompiled, compile_pipeline
from fraud_assets.lib.schema import SCORED_TRANSACTIONS_SCHEMA

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ServingModel:
    """A trained model and everything that turns its output into a decision. ``runtime``,
    when set, is the same model compiled for speed (``lib/runtime.py``), proven to give
    scikit-learn's probabilities; it is what serving calls."""

    pipeline: object
    feature_set: FeatureSet
    calibration: Calibration
    decision: DecisionRule
    name: str = "local"
    version: str = "0"
    runtime: FastPredictor | None = field(default=None, compare=False, repr=False)

    def probabilities(self, features: pl.DataFrame) -> np.ndarray:
        """Calibrated fraud probabilities for a feature frame."""
        if self.runtime is not None:
            raw = self.runtime.predict_raw(self.feature_set.matrix(features))
        else:
            raw = predict_raw(self.pipeline, self.feature_set, features)
        return self.calibration.apply(raw)


def with_runtime(model: ServingModel) -> ServingModel:
    """``model`` with its fast runtime compiled (about 0.1 s), or unchanged, with a warning,
    when this model cannot be compiled exactly: then scikit-learn serves it."""
    try:
        runtime = compile_pipeline(model.pipeline, len(model.feature_set.features))
    except NotCompiled as exc:
        log.warning("model %s v%s is served by scikit-learn: %s", model.name, model.version, exc)
        return model
    return dataclasses.replace(model, runtime=runtime)


class CardStateSource(Protocol):
    """Where serving finds the card state its features read, by card."""

    def state_for(self, fs: FeatureSet, cards: list[str]) -> pl.DataFrame:
        """The state of ``cards`` only: profile rows (arrival) or earlier transactions."""
        ...

    def static_frames(self, fs: FeatureSet, cards: list[str]) -> dict[str, pl.DataFrame]:
        """Each card's state as ``card_state`` wrote it, by card."""
        ...

    def vector_states(self, fs: FeatureSet, cards: list[str]) -> dict[str, object]:
        """``fs.vector_state`` of each card's ``static_frames`` (``score_vectors``' input)."""
        ...

    def holds(self, fs: FeatureSet, cards: list[str]) -> bool:
        """Whether the static state of ``cards`` is at hand, with no database read."""
        ...


@dataclass(frozen=True)
class FrameState:
    """Card state held in memory: a profile table or history rows, as ``fs.build_state``
    returns (the evaluation, tests, and small deployments)."""

    frame: pl.DataFrame

    def state_for(self, fs: FeatureSet, cards: list[str]) -> pl.DataFrame:
        return self.frame.filter(pl.col("cc_num").is_in(pl.Series(cards, dtype=pl.String)))

    def static_frames(self, fs: FeatureSet, cards: list[str]) -> dict[str, pl.DataFrame]:
        return by_card(self.state_for(fs, cards), cards)

    def vector_states(self, fs: FeatureSet, cards: list[str]) -> dict[str, object]:
        return vector_states_of(fs, self.static_frames(fs, cards))

    def holds(self, fs: FeatureSet, cards: list[str]) -> bool:
        return True


def vector_states_of(fs: FeatureSet, frames: dict[str, pl.DataFrame]) -> dict[str, object]:
    """Each card's state frame in the form ``score_vectors`` reads (``fs.vector_state``)."""
    return {card: fs.vector_state(frame) for card, frame in frames.items()}


def by_card(state: pl.DataFrame, cards: list[str]) -> dict[str, pl.DataFrame]:
    """``state``'s rows of each of ``cards`` (an empty frame for a card with none)."""
    parts = state.partition_by("cc_num", as_dict=True)
    return {c: parts.get((c,), state.head(0)) for c in cards}


@dataclass
class ScoredBatch:
    """Scored rows (``SCORED_TRANSACTIONS_SCHEMA``) and the feature rows they were scored on."""

    scored: pl.DataFrame
    features: pl.DataFrame


def ensure_servable(model: ServingModel, semantics: str) -> None:
    """Refuse a model trained for another feed semantics or feature-set version."""
    for_semantics(semantics).check_model(model.feature_set.semantics, model.feature_set.version)


def score_rows(
    rows: pl.DataFrame,
    state: CardStateSource,
    model: ServingModel,
    *,
    semantics: str,
    batch_hour: str | None = None,
    scored_at: dt.datetime | None = None,
    decided_by: str = "poll",
) -> ScoredBatch:
    """Score canonical transactions as the live path does.

    ``is_fraud``, when present, is carried through as ``label_is_fraud`` for monitoring only;
    no feature reads it. ``batch_hour`` is the rows' own, else the one given. ``semantics``
    is the feed's configured semantics: a model for any other is refused
    (``IncompatibleModel``), never served.
    """
    ensure_servable(model, semantics)
    fs = model.feature_set
    if rows.height == 0:
        return ScoredBatch(pl.DataFrame(schema=SCORED_TRANSACTIONS_SCHEMA), pl.DataFrame())
    cards = rows["cc_num"].unique().to_list()
    features = fs.serving_features(rows, state.state_for(fs, cards))
    proba = model.probabilities(features)
    amount = rows["amt"].to_numpy()
    thresholds, flagged = _decide(model, proba, amount)
    scored_at = scored_at or dt.datetime.now(dt.UTC).replace(tzinfo=None)
    scored = rows.select(
        "trans_num",
        "event_time",
        "cc_num",
        "merchant",
        "category",
        "amt",
        event_time_source=_column_or(rows, "event_time_source", fs.semantics, pl.String),
        arrived_at=_column_or(rows, "arrived_at", None, pl.Datetime("ms")),
        fraud_probability=pl.Series(proba, dtype=pl.Float64),
        expected_loss=pl.Series(proba * amount, dtype=pl.Float64),
        is_flagged=pl.Series(flagged, dtype=pl.Boolean),
        threshold=pl.Series(thresholds, dtype=pl.Float64),
        model_name=pl.lit(model.name),
        model_version=pl.lit(str(model.version)),
        feature_set_version=pl.lit(fs.version),
        feed_semantics=pl.lit(semantics),
        scored_at=pl.lit(scored_at, dtype=pl.Datetime("ms")),
        label_is_fraud=_column_or(rows, "is_fraud", None, pl.Int8),
        batch_hour=_column_or(rows, "batch_hour", batch_hour, pl.String),
        decided_by=pl.lit(decided_by),
    )
    scored = scored.select(pl.col(c).cast(t) for c, t in SCORED_TRANSACTIONS_SCHEMA.items())
    return ScoredBatch(scored, features)


def _decide(model: ServingModel, proba: np.ndarray, amount: np.ndarray) -> tuple:
    """The rule's threshold for each row, and whether the row is flagged."""
    thresholds = model.decision.thresholds(amount)
    return thresholds, proba >= thresholds


@dataclass(frozen=True)
class Scores:
    """``score_vectors``' answer for each row: its features and what the rule made of them."""

    features: dict[str, Vec]
    proba: np.ndarray
    thresholds: np.ndarray
    flagged: np.ndarray
    expected_loss: np.ndarray


def fast_path_serves(model: ServingModel) -> bool:
    """Whether ``score_vectors`` can score for ``model``: its features have a numpy path and
    the model a fast runtime (scikit-learn needs a frame)."""
    return model.runtime is not None and model.feature_set.has_vectors


def score_vectors(
    rows: dict[str, list], state: dict[str, object], model: ServingModel, *, semantics: str
) -> Scores:
    """``score_rows`` for a small batch without polars: ``rows`` as columns of Python values,
    ``state`` each card's ``vector_states``. The same features (``FeatureSet.serving_vectors``),
    runtime, calibration and rule, held identical to ``score_rows`` by the parity tests; a
    polars query costs about a millisecond however few its rows, this a few microseconds a
    row. Only where ``fast_path_serves(model)``."""
    ensure_servable(model, semantics)
    if model.runtime is None:
        raise ValueError("score_vectors needs the model's fast runtime")
    fs = model.feature_set
    vectors = fs.serving_vectors(rows, state)
    proba = model.calibration.apply(model.runtime.predict_raw(fs.vector_matrix(vectors)))
    amount = np.asarray(rows["amt"], dtype=np.float64)
    thresholds, flagged = _decide(model, proba, amount)
    return Scores(vectors, proba, thresholds, flagged, proba * amount)


def _column_or(frame: pl.DataFrame, name: str, default: object, dtype: pl.DataType) -> pl.Expr:
    if name in frame.columns:
        return pl.col(name).cast(dtype)
    return pl.lit(default, dtype=dtype)
