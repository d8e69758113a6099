"""How good a scored, labelled set is: ranking, the decision, its cost, and calibration."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import polars as pl
from sklearn.metrics import average_precision_score, roc_auc_score

from fraud_assets.lib.calibration import brier_score, expected_calibration_error
from fraud_assets.lib.decision import DecisionRule, review_cost_of


@dataclass
class Evaluation:
    """Metrics on labelled rows under one decision rule."""

    ap: float
    roc_auc: float
    precision: float
    recall: float
    f1: float
    flag_rate: float
    fraud_rate: float
    threshold: float  # the rule's expected-loss bound, in dollars
    cost: float  # fraud let through + one review per flag
    brier: float
    ece: float
    rows: int
    frauds: int

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


def ranking(y: np.ndarray, proba: np.ndarray) -> tuple[float, float]:
    """``(AP, ROC-AUC)``; NaN when only one class is present."""
    if len(np.unique(y)) < 2:
        return float("nan"), float("nan")
    return float(average_precision_score(y, proba)), float(roc_auc_score(y, proba))


def evaluate(
    y: np.ndarray, proba: np.ndarray, amount: np.ndarray, rule: DecisionRule
) -> Evaluation:
    """Metrics for calibrated probabilities ``proba`` of rows labelled ``y``."""
    y = np.asarray(y).astype(np.int8)
    flag = rule.flags(proba, amount)
    tp = int(np.sum(flag & (y == 1)))
    precision = tp / max(int(flag.sum()), 1)
    recall = tp / max(int(y.sum()), 1)
    ap, auc = ranking(y, proba)
    rows = len(y)
    return Evaluation(
        ap=ap,
        roc_auc=auc,
        precision=precision,
        recall=recall,
        f1=2 * precision * recall / (precision + recall) if precision + recall else 0.0,
        flag_rate=float(flag.mean()) if rows else 0.0,
        fraud_rate=float(y.mean()) if rows else 0.0,
        threshold=rule.min_expected_loss,
        cost=review_cost_of(y, flag, amount, rule.review_cost),
        brier=brier_score(y, proba),
        ece=expected_calibration_error(y, proba),
        rows=rows,
        frauds=int(y.sum()),
    )


def evaluate_frame(scored: pl.DataFrame, rule: DecisionRule) -> Evaluation:
    """``evaluate`` on a frame with ``is_fraud``, ``fraud_probability`` and ``amt``."""
    return evaluate(
        scored["is_fraud"].to_numpy(),
        scored["fraud_probability"].to_numpy(),
        scored["amt"].to_numpy(),
        rule,
    )
