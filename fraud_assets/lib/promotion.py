"""The promotion gate: when a candidate may replace the champion.

A candidate replaces the champion only if all of these hold:
1. it was trained for the feed this platform serves (semantics and feature-set version);
2. the champion's training window does not overlap the comparison window (the candidate's
   validation window), so the champion is not judged on rows it was fitted on;
3. a paired bootstrap on that window puts the whole 95 % interval of the AP difference
   (candidate minus champion) above ``ap_margin``;
4. the candidate's decision costs no more than the champion's on the same rows.
With no usable champion (none, or one for another feed or feature version, which serving
refuses anyway), the candidate must clear the first-model bars instead.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass

import numpy as np

from fraud_assets.lib.decision import DecisionRule, review_cost_of
from fraud_assets.lib.metrics import ranking

Window = tuple[dt.datetime, dt.datetime]


@dataclass(frozen=True)
class GateConfig:
    """The gate's bars: first-model minimums and the margin a challenger must clear."""

    min_ap: float = 0.3
    min_roc_auc: float = 0.8
    ap_margin: float = 0.0
    bootstrap_samples: int = 1000
    confidence: float = 0.95
    seed: int = 0


@dataclass(frozen=True)
class Scores:
    """One model's calibrated probabilities on the comparison window, and its decision."""

    semantics: str
    feature_set_version: str
    proba: np.ndarray | None
    rule: DecisionRule
    #: Time spans the model was fitted on (None: unknown).
    fit_windows: list[Window] | None = None
    version: str = ""


@dataclass(frozen=True)
class GateDecision:
    passed: bool
    reason: str
    candidate_ap: float
    champion_ap: float | None = None
    ap_diff: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    candidate_cost: float | None = None
    champion_cost: float | None = None

    def as_dict(self) -> dict[str, object]:
        return {k: v for k, v in asdict(self).items() if v is not None}


def weighted_ap(y_sorted: np.ndarray, last_of_tie: np.ndarray, weights: np.ndarray) -> float:
    """Average precision of rows already sorted by descending score, with row weights;
    ``last_of_tie`` marks the last row of each group of equal scores (as scikit-learn)."""
    tp = np.cumsum(weights * y_sorted)[last_of_tie]
    fp = np.cumsum(weights * (1 - y_sorted))[last_of_tie]
    positives = tp[-1]
    if positives <= 0:
        return float("nan")
    precision = tp / np.maximum(tp + fp, 1e-12)
    recall = tp / positives
    return float(np.sum(np.diff(np.concatenate([[0.0], recall])) * precision))


def _sorted(y: np.ndarray, proba: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    order = np.argsort(-proba, kind="mergesort")
    p = proba[order]
    last = np.append(p[1:] != p[:-1], True)
    return order, y[order].astype(np.float64), last


def paired_bootstrap_ap(
    y: np.ndarray, cand: np.ndarray, champ: np.ndarray, samples: int, confidence: float, seed: int
) -> tuple[float, float, float]:
    """``(AP difference, interval low, interval high)`` of candidate minus champion, resampling
    the same rows for both models (a paired bootstrap)."""
    y = np.asarray(y)
    oc, yc, lc = _sorted(y, np.asarray(cand, dtype=np.float64))
    oh, yh, lh = _sorted(y, np.asarray(champ, dtype=np.float64))
    ones = np.ones(len(y))
    diff = weighted_ap(yc, lc, ones) - weighted_ap(yh, lh, ones)
    rng = np.random.default_rng(seed)
    diffs = np.empty(samples)
    for i in range(samples):
        counts = np.bincount(rng.integers(0, len(y), len(y)), minlength=len(y)).astype(float)
        diffs[i] = weighted_ap(yc, lc, counts[oc]) - weighted_ap(yh, lh, counts[oh])
    diffs = diffs[np.isfinite(diffs)]
    alpha = (1 - confidence) / 2
    low, high = np.quantile(diffs, [alpha, 1 - alpha]) if len(diffs) else (np.nan, np.nan)
    return float(diff), float(low), float(high)


def overlap(fitted: list[Window] | None, compared: list[Window]) -> Window | None:
    """The first pair of spans that share time, as ``(start, end)`` of the fitted one; an
    unknown training span cannot be shown not to overlap."""
    if fitted is None:
        return (dt.datetime.min, dt.datetime.max)
    for f_start, f_end in fitted:
        for c_start, c_end in compared:
            if f_start <= c_end and c_start <= f_end:
                return f_start, f_end
    return None


def _spans(windows: list[Window]) -> str:
    return ", ".join(f"{a:%Y-%m-%d %H:%M}..{b:%Y-%m-%d %H:%M}" for a, b in windows)


def decide(
    y: np.ndarray,
    amount: np.ndarray,
    window: list[Window],
    candidate: Scores,
    champion: Scores | None,
    serving: tuple[str, str],
    config: GateConfig = GateConfig(),
) -> GateDecision:
    """Whether ``candidate`` may become champion, judged on the rows of the comparison
    ``window`` spans labelled ``y``; ``serving`` is the ``(semantics, feature-set version)``
    this platform serves."""
    ap, auc = ranking(y, candidate.proba)
    cost = review_cost_of(
        y, candidate.rule.flags(candidate.proba, amount), amount, candidate.rule.review_cost
    )
    if (candidate.semantics, candidate.feature_set_version) != serving:
        return GateDecision(
            False,
            f"candidate is for {candidate.semantics!r} feeds on features "
            f"{candidate.feature_set_version!r}; this platform serves {serving[0]!r} on "
            f"{serving[1]!r}",
            ap,
            candidate_cost=cost,
        )
    usable = champion is not None and (champion.semantics, champion.feature_set_version) == serving
    if not usable:
        ok = ap >= config.min_ap and auc >= config.min_roc_auc
        why = (
            "no champion"
            if champion is None
            else (
                f"champion v{champion.version} is for {champion.semantics!r} on "
                f"{champion.feature_set_version!r}, which this platform no longer serves"
            )
        )
        return GateDecision(
            ok,
            f"{why}: first-model bars AP {ap:.4f} (min {config.min_ap}), ROC-AUC {auc:.4f} "
            f"(min {config.min_roc_auc})",
            ap,
            candidate_cost=cost,
        )
    assert champion is not None
    shared = overlap(champion.fit_windows, window)
    if shared is not None:
        trained = "unknown times" if champion.fit_windows is None else _spans([shared])
        return GateDecision(
            False,
            f"champion v{champion.version} was trained on {trained}, which overlaps the "
            f"comparison window {_spans(window)}",
            ap,
            candidate_cost=cost,
        )
    champ_ap, _ = ranking(y, champion.proba)
    # both decisions priced with the same (the candidate's, i.e. today's) cost of a review
    champ_cost = review_cost_of(
        y, champion.rule.flags(champion.proba, amount), amount, candidate.rule.review_cost
    )
    diff, low, high = paired_bootstrap_ap(
        y,
        candidate.proba,
        champion.proba,
        config.bootstrap_samples,
        config.confidence,
        config.seed,
    )
    better = low > config.ap_margin
    cheaper = cost <= champ_cost
    reason = (
        f"AP {ap:.4f} vs champion v{champion.version} {champ_ap:.4f}: difference {diff:+.4f}, "
        f"{config.confidence:.0%} interval [{low:+.4f}, {high:+.4f}] "
        f"{'above' if better else 'not above'} margin {config.ap_margin}; cost "
        f"${cost:,.0f} vs ${champ_cost:,.0f} ({'no worse' if cheaper else 'worse'})"
    )
    return GateDecision(better and cheaper, reason, ap, champ_ap, diff, low, high, cost, champ_cost)


def choose(candidates: dict[str, tuple[str, float]]) -> tuple[str, str]:
    """Of the candidates that passed (asset -> ``(version, AP)``), the best, and why."""
    if not candidates:
        raise ValueError("no candidate")
    best = max(candidates, key=lambda k: (candidates[k][1], k))
    version, ap = candidates[best]
    others = [f"{k} version {v} (AP {a:.4f})" for k, (v, a) in candidates.items() if k != best]
    why = f"{best} version {version} passed the gate with comparison AP {ap:.4f}"
    if others:
        why += f", the best on the same window; also passed: {', '.join(others)}"
    return best, why
