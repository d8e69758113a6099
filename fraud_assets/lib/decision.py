"""The decision: review a transaction when the fraud it may carry is worth a review.

With calibrated probabilities, flagging a transaction saves ``p × amount`` in expected fraud
and costs one review, so a row is flagged when ``p × amount >= min_expected_loss``. That bound
is the review cost, raised only as far as a configured review capacity (the largest share of
transactions analysts can review) requires. A $3 purchase is never worth a $5 review.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: Amounts below this are treated as this, so a probability threshold stays finite.
MIN_AMOUNT = 0.01


@dataclass(frozen=True)
class DecisionRule:
    """Flag when the expected fraud loss reaches ``min_expected_loss`` dollars."""

    review_cost: float
    min_expected_loss: float

    @classmethod
    def fit(
        cls,
        review_cost: float,
        proba: np.ndarray,
        amount: np.ndarray,
        max_flag_rate: float | None = None,
    ) -> DecisionRule:
        """The rule for ``review_cost``; with ``max_flag_rate``, the bound is raised until at
        most that share of the given (validation) rows would be flagged."""
        bound = review_cost
        if max_flag_rate is not None and len(proba):
            loss = np.asarray(proba) * np.asarray(amount)
            capacity = float(np.quantile(loss, 1.0 - max_flag_rate, method="higher"))
            bound = max(bound, np.nextafter(capacity, np.inf))
        return cls(review_cost=float(review_cost), min_expected_loss=float(bound))

    def thresholds(self, amount: np.ndarray) -> np.ndarray:
        """The probability at or above which a row of each amount is flagged."""
        return self.min_expected_loss / np.maximum(np.asarray(amount, dtype=np.float64), MIN_AMOUNT)

    def flags(self, proba: np.ndarray, amount: np.ndarray) -> np.ndarray:
        return np.asarray(proba) >= self.thresholds(amount)


def review_cost_of(
    y: np.ndarray, flagged: np.ndarray, amount: np.ndarray, review_cost: float
) -> float:
    """What a decision costs: fraud amounts let through plus one review per flagged row."""
    y, flagged = np.asarray(y), np.asarray(flagged, dtype=bool)
    return float(np.sum(np.asarray(amount)[(y == 1) & ~flagged]) + review_cost * flagged.sum())
