"""The expected-cost decision: flag when p x amount reaches the review cost."""

import numpy as np
import pytest

from fraud_assets.lib.decision import DecisionRule, review_cost_of

RULE = DecisionRule(review_cost=5.0, min_expected_loss=5.0)


@pytest.mark.parametrize(
    ("proba", "amount", "flagged"),
    [
        (0.5, 10.0, True),  # exactly at the boundary: 0.5 x $10 = $5
        (0.4999, 10.0, False),  # just under it
        (0.01, 500.0, True),  # a small chance on a big amount is worth a review
        (0.9, 3.0, False),  # a $3 purchase is never worth a $5 review
        (1.0, 5.0, True),
        (0.0, 10_000.0, False),
    ],
)
def test_the_rule_flags_exactly_at_the_cost_boundary(proba, amount, flagged) -> None:
    assert bool(RULE.flags(np.array([proba]), np.array([amount]))[0]) is flagged


def test_thresholds_are_the_probability_where_a_row_starts_to_be_flagged() -> None:
    t = RULE.thresholds(np.array([10.0, 500.0, 0.0]))
    assert t[0] == 0.5 and t[1] == 0.01 and t[2] == 5.0 / 0.01


def test_a_review_capacity_raises_the_bound_to_fit() -> None:
    rng = np.random.default_rng(0)
    proba, amount = rng.random(10_000) * 0.2, rng.uniform(1, 1000, 10_000)
    free = DecisionRule.fit(5.0, proba, amount)
    capped = DecisionRule.fit(5.0, proba, amount, max_flag_rate=0.01)
    assert free.min_expected_loss == 5.0
    assert capped.min_expected_loss > 5.0
    assert capped.flags(proba, amount).mean() <= 0.01
    assert capped.flags(proba, amount).mean() > 0.009


def test_cost_counts_missed_fraud_and_every_review() -> None:
    y = np.array([1, 1, 0, 0])
    flagged = np.array([True, False, True, False])
    assert review_cost_of(y, flagged, np.array([100.0, 40.0, 7.0, 9.0]), 5.0) == 40 + 2 * 5
