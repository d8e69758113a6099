"""Why a transaction scored as it did: TreeSHAP contributions, summed by feature family.

The contributions are exact Shapley values of the model's raw score (the forest's probability
before calibration, or boosting's log-odds), so they add up: baseline + sum of contributions
= raw score. Summing by family (amount, card habits, category, ...) keeps redundant copies of
one signal, such as amount and log amount, from hiding each other. Only families and their
contributions leave this module: never a feature's value, which could reveal a card's history.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from fraud_assets.lib.features import FAMILIES, FEATURE_FAMILY, FeatureSet


@dataclass(frozen=True)
class Explanation:
    """Per-family contributions to one row's raw score."""

    baseline: float
    raw_score: float
    families: pl.DataFrame  # family, meaning, contribution; largest effect first

    @property
    def total(self) -> float:
        return float(self.families["contribution"].sum())


class Explainer:
    """A TreeSHAP explainer for one fitted pipeline (imputer, then a tree ensemble)."""

    def __init__(self, pipeline: object, fs: FeatureSet) -> None:
        import shap

        self.pipeline = pipeline
        self.fs = fs
        self._prepare = pipeline[:-1]  # type: ignore[index]
        self._tree = shap.TreeExplainer(pipeline[-1])  # type: ignore[index]
        expected = np.atleast_1d(self._tree.expected_value)
        self._class = 1 if len(expected) == 2 else 0
        self.baseline = float(expected[self._class])
        self._families = [FEATURE_FAMILY[f] for f in fs.features]

    def raw_contributions(self, features: pl.DataFrame) -> np.ndarray:
        """Shapley values, one row per feature row, one column per feature."""
        x = self._prepare.transform(self.fs.matrix(features))
        values = self._tree.shap_values(x, check_additivity=False)
        values = np.asarray(values)
        return values[..., self._class] if values.ndim == 3 else values

    def explain(self, features: pl.DataFrame) -> Explanation:
        """The explanation of the first row of ``features``."""
        contrib = self.raw_contributions(features.head(1))[0]
        by_family: dict[str, float] = {}
        for family, value in zip(self._families, contrib, strict=True):
            by_family[family] = by_family.get(family, 0.0) + float(value)
        frame = pl.DataFrame(
            {
                "family": list(by_family),
                "meaning": [FAMILIES[f] for f in by_family],
                "contribution": list(by_family.values()),
            }
        ).sort(pl.col("contribution").abs(), descending=True)
        return Explanation(self.baseline, self.baseline + float(contrib.sum()), frame)
