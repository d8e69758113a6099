"""The feature sets, one per feed semantics, and the one way to compute each.

- ``arrival-v1`` for feeds without a true event time (the real transactions API): the row's
  own columns without any clock, and the card's profile frozen at the end of the training data
  (``profile.py``). Nothing reads the arrival time, order or density.
- ``event-v2`` for feeds whose rows carry their true event time: row features with the clock
  and per-card history over strictly earlier transactions (``history.py``).

Training, live scoring, the web app and the evaluation all reach features through a
``FeatureSet``, so they cannot drift apart. A model records the version it was trained on, and
``for_model`` refuses any other.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import polars as pl

from fraud_assets.lib.features import history, profile
from fraud_assets.lib.features.catalog import FAMILIES, FEATURE_FAMILY, FEATURE_LABELS
from fraud_assets.lib.features.vectors import Vec

__all__ = [
    "FAMILIES",
    "FEATURE_FAMILY",
    "FEATURE_LABELS",
    "FEATURE_SETS",
    "FeatureSet",
    "IncompatibleModel",
    "feature_set",
    "for_semantics",
]

#: Columns any feature set reads from a transaction; labels and names never reach a model.
INPUT_COLUMNS = history.INPUT_COLUMNS


class IncompatibleModel(ValueError):
    """A model was trained for another feed semantics or feature-set version."""


@dataclass(frozen=True)
class FeatureSet:
    """One versioned set of features and the feed semantics it is valid for."""

    version: str
    semantics: str
    features: tuple[str, ...]

    @property
    def uses_profiles(self) -> bool:
        return self.semantics == "arrival"

    def training_features(self, rows: pl.DataFrame, profile_lag: dt.timedelta) -> pl.DataFrame:
        """Features of labelled training rows, each from strictly earlier training rows."""
        if self.uses_profiles:
            return profile.training_features(rows, profile_lag)
        return history.compute_features(rows)

    def serving_features(self, rows: pl.DataFrame, state: pl.DataFrame) -> pl.DataFrame:
        """Features of rows as they are served: ``state`` is the frozen profile table
        (arrival) or the cards' earlier transactions (event time)."""
        if self.uses_profiles:
            return profile.serving_features(rows, state)
        return history.features_with_history(rows, state)

    @property
    def has_vectors(self) -> bool:
        """Whether ``serving_vectors`` computes this set (the profile features do)."""
        return self.uses_profiles

    def serving_vectors(self, rows: dict[str, list], state: dict[str, object]) -> dict[str, Vec]:
        """``serving_features`` of a few rows in Python: ``rows`` as columns of Python values,
        ``state`` each card's ``vector_state`` (``profile.serving_vectors``)."""
        if not self.has_vectors:
            raise NotImplementedError(f"{self.version} is computed by polars only")
        return profile.serving_vectors(rows, state)  # type: ignore[arg-type]

    def vector_state(self, frame: pl.DataFrame) -> object:
        """A card's state frame (what ``build_state`` makes, one card's rows) in the form
        ``serving_vectors`` reads: made once per card by a long-lived process."""
        if not self.has_vectors:
            raise NotImplementedError(f"{self.version} is computed by polars only")
        return profile.profile_rows(frame)

    def vector_matrix(self, vectors: dict[str, Vec]) -> np.ndarray:
        """``matrix`` of ``serving_vectors``' output."""
        return Vec.matrix([vectors[name] for name in self.features])

    def build_state(self, history_rows: pl.DataFrame) -> pl.DataFrame:
        """The card state that serving reads after ``history_rows``: the profile table
        (arrival) or the history rows themselves, reduced to what the features read."""
        if self.uses_profiles:
            return profile.build_profiles(history_rows)
        return history_rows.select(INPUT_COLUMNS)

    def matrix(self, features: pl.DataFrame) -> np.ndarray:
        """The model input: feature columns only, as float64, in this set's order."""
        return features.select(pl.col(self.features).cast(pl.Float64)).to_numpy()

    def check_model(self, semantics: str, version: str) -> None:
        """Refuse a model trained for another semantics or feature-set version."""
        if (semantics, version) != (self.semantics, self.version):
            raise IncompatibleModel(
                f"the model was trained for {semantics!r} feeds on features {version!r}, but "
                f"this platform serves {self.semantics!r} feeds with features {self.version!r}; "
                "train a model for this feed (materialize rf_model and champion_model) or set "
                "FRAUD_FEED_SEMANTICS to the model's semantics"
            )


FEATURE_SETS: dict[str, FeatureSet] = {
    fs.version: fs
    for fs in (
        FeatureSet("arrival-v1", "arrival", profile.FEATURES),
        FeatureSet("event-v2", "payload", history.FEATURES),
    )
}
_BY_SEMANTICS = {fs.semantics: fs for fs in FEATURE_SETS.values()}


def for_semantics(semantics: str) -> FeatureSet:
    """The current feature set for a feed semantics ('arrival' or 'payload')."""
    try:
        return _BY_SEMANTICS[semantics]
    except KeyError:
        raise ValueError(
            f"unknown feed semantics {semantics!r}; choose 'arrival' or 'payload'"
        ) from None


def feature_set(version: str) -> FeatureSet:
    """A feature set by version; IncompatibleModel if this code does not know it."""
    try:
        return FEATURE_SETS[version]
    except KeyError:
        raise IncompatibleModel(
            f"unknown feature-set version {version!r}; this code serves {', '.join(FEATURE_SETS)}"
        ) from None
