"""Calibrated probabilities: undo the training sample's prior, and re-fit it on live labels.

The forest is fitted on every fraud and a share of the legitimate rows, and boosting may weight
the classes: both multiply the model's odds of fraud by a known factor. Dividing it back out
(prior correction) gives probabilities that mean what they say, without changing the ranking.
When the live fraud rate moves, ``refit_odds`` re-estimates the factor on labelled live rows.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize_scalar


@dataclass(frozen=True)
class Calibration:
    """Multiply the model's odds of fraud by ``odds_factor``."""

    odds_factor: float = 1.0

    def apply(self, raw: np.ndarray) -> np.ndarray:
        """Calibrated probabilities for raw model probabilities (0 and 1 stay as they are)."""
        raw = np.asarray(raw, dtype=np.float64)
        scaled = self.odds_factor * raw
        return np.divide(scaled, scaled + (1.0 - raw), out=np.zeros_like(raw), where=raw > 0)

    @classmethod
    def for_training(
        cls, y: np.ndarray, legit_sample_rate: float, class_weight: str | None
    ) -> Calibration:
        """The prior correction for a model fitted on every fraud and ``legit_sample_rate`` of
        the legitimate rows of ``y``, with ``class_weight`` ('balanced' or None)."""
        factor = legit_sample_rate
        if class_weight == "balanced":
            frauds = float(np.sum(y == 1))
            legit = float(np.sum(y == 0)) * legit_sample_rate
            # balanced weights multiply fraud odds by legit / frauds among the fitted rows
            factor *= frauds / max(legit, 1.0)
        return cls(odds_factor=float(factor))


def refit_odds(raw: np.ndarray, y: np.ndarray, prior: Calibration) -> Calibration:
    """The odds factor that maximises the likelihood of labels ``y`` (one shift of the log
    odds, so the ranking is kept), starting from ``prior``'s. Needs at least one of each
    label."""
    raw = np.clip(np.asarray(raw, dtype=np.float64), 1e-6, 1 - 1e-6)
    y = np.asarray(y, dtype=np.float64)
    if y.min() == y.max():
        raise ValueError("re-calibration needs both fraud and legitimate labelled rows")
    logit = np.log(raw / (1 - raw))

    def loss(shift: float) -> float:
        z = logit + shift
        return float(np.sum(np.logaddexp(0.0, z) - y * z))

    start = float(np.log(prior.odds_factor))
    best = minimize_scalar(loss, bounds=(start - 12, start + 12), method="bounded")
    return Calibration(odds_factor=float(np.exp(best.x)))


def expected_calibration_error(y: np.ndarray, p: np.ndarray, bins: int = 15) -> float:
    """ECE: the row-weighted mean gap between predicted and observed fraud rates over
    ``bins`` equal-width probability bins."""
    y, p = np.asarray(y, dtype=np.float64), np.asarray(p, dtype=np.float64)
    if len(y) == 0:
        return float("nan")
    idx = np.clip((p * bins).astype(int), 0, bins - 1)
    total = 0.0
    for b in np.unique(idx):
        in_bin = idx == b
        total += in_bin.mean() * abs(y[in_bin].mean() - p[in_bin].mean())
    return float(total)


def brier_score(y: np.ndarray, p: np.ndarray) -> float:
    y, p = np.asarray(y, dtype=np.float64), np.asarray(p, dtype=np.float64)
    return float(np.mean((p - y) ** 2)) if len(y) else float("nan")


def reliability(y: np.ndarray, p: np.ndarray, bins: int = 10) -> list[tuple[float, float, int]]:
    """``(mean predicted, observed rate, rows)`` per non-empty quantile bin, for a plot."""
    y, p = np.asarray(y, dtype=np.float64), np.asarray(p, dtype=np.float64)
    order = np.argsort(p, kind="stable")
    out = []
    for chunk in np.array_split(order, bins):
        if len(chunk):
            out.append((float(p[chunk].mean()), float(y[chunk].mean()), len(chunk)))
    return out


def recalibrate(
    raw: np.ndarray,
    y: np.ndarray,
    amount: np.ndarray,
    current: Calibration,
    rule,  # noqa: ANN001 - a DecisionRule
    min_frauds: int = 10,
    min_change: float = 1.1,
) -> tuple[Calibration | None, str]:
    """Re-choose the decision on recent labelled live rows with the same cost rule: a new
    odds factor when it moves by at least ``min_change`` times and costs less on these rows;
    None (and why) otherwise."""
    from fraud_assets.lib.decision import review_cost_of

    frauds = int(np.sum(y))
    if frauds < min_frauds or frauds == len(y):
        return None, f"{frauds} labelled frauds among {len(y)} rows (need {min_frauds})"
    new = refit_odds(raw, y, current)

    def cost(cal: Calibration) -> float:
        return review_cost_of(y, rule.flags(cal.apply(raw), amount), amount, rule.review_cost)

    before, after = cost(current), cost(new)
    ratio = new.odds_factor / current.odds_factor
    why = (
        f"odds factor {current.odds_factor:.4g} -> {new.odds_factor:.4g} on {len(y)} labelled "
        f"rows ({frauds} frauds): cost ${before:,.0f} -> ${after:,.0f}"
    )
    if after < before and max(ratio, 1 / ratio) >= min_change:
        return new, why
    return None, why + " (kept: no material gain)"
