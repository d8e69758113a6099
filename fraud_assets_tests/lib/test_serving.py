"""The one serving path: the same features one payload at a time as in a batch, the label is
never an input, and a model for another feed or feature version is refused."""

import datetime as dt

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from fraud_assets.lib.evaluation import (
    score_payloads,
    serving_model,
    simulate_api,
    simulate_replay,
)
from fraud_assets.lib.features import IncompatibleModel, for_semantics
from fraud_assets.lib.landing import Feed, parse_payloads
from fraud_assets.lib.model import TrainParams, train
from fraud_assets.lib.serving import FrameState, score_rows
from fraud_assets_tests.helpers.data import SPLIT


@pytest.fixture(scope="module")
def split(dataset):
    data = dataset.canonical
    return data.filter(pl.col("event_time") < SPLIT), data.filter(pl.col("event_time") >= SPLIT)


@pytest.fixture(scope="module")
def models(split):
    history, _ = split
    params = TrainParams(n_estimators=20, n_jobs=2)
    return {s: train(history, for_semantics(s), params) for s in ("arrival", "payload")}


@pytest.mark.parametrize(
    ("semantics", "simulate"),
    [("arrival", lambda t: simulate_api(t, 150, seed=3)), ("payload", simulate_replay)],
)
def test_one_payload_at_a_time_gives_the_batch_features(models, split, semantics, simulate):
    """The evaluation scores all payloads in one batch; serving sees them one by one."""
    history, test = split
    result = models[semantics]
    payloads = simulate(test.head(150))
    batch, _ = score_payloads(payloads, result, history)
    fs = result.feature_set
    feed = Feed(semantics, "event_time")
    state, one_by_one, seen = fs.build_state(history), [], set()
    live_history = history
    for key, body in payloads:
        rows = parse_payloads([(key, body)], feed).rows
        rows = rows.filter(~pl.col("trans_num").is_in(list(seen)))  # the warehouse dedups
        if rows.height == 0:
            continue
        seen |= set(rows["trans_num"])
        if semantics == "payload":  # an event-time feed's state grows with the live rows
            state = live_history
            live_history = pl.concat([live_history, rows.select(history.columns)])
        one_by_one.append(
            score_rows(rows, FrameState(state), serving_model(result), semantics=semantics)
        )
    online = pl.concat([b.features for b in one_by_one])
    assert online.height == batch.features.height
    cols = ["trans_num", *fs.features]
    assert_frame_equal(
        online.select(cols).sort("trans_num"), batch.features.select(cols).sort("trans_num")
    )
    scored = pl.concat([b.scored for b in one_by_one]).sort("trans_num")
    assert np.array_equal(
        scored["fraud_probability"].to_numpy(),
        batch.scored.sort("trans_num")["fraud_probability"].to_numpy(),
    )


def test_the_label_is_never_a_model_input(models, split) -> None:
    history, test = split
    result = models["arrival"]
    state = FrameState(result.feature_set.build_state(history))
    rows = test.head(300)
    honest = score_rows(rows, state, serving_model(result), semantics="arrival").scored
    flipped = score_rows(
        rows.with_columns(is_fraud=1 - pl.col("is_fraud")),
        state,
        serving_model(result),
        semantics="arrival",
    ).scored
    assert honest["fraud_probability"].equals(flipped["fraud_probability"])
    assert not honest["label_is_fraud"].equals(flipped["label_is_fraud"])


@pytest.mark.parametrize(
    ("trained_for", "served"), [("payload", "arrival"), ("arrival", "payload")]
)
def test_a_model_for_another_feed_is_refused_never_served(models, split, trained_for, served):
    history, test = split
    result = models[trained_for]
    state = FrameState(result.feature_set.build_state(history))
    with pytest.raises(IncompatibleModel, match=f"trained for '{trained_for}' feeds"):
        score_rows(test.head(5), state, serving_model(result), semantics=served)


def test_scored_rows_carry_the_decision_and_its_provenance(models, split) -> None:
    history, test = split
    result = models["arrival"]
    state = FrameState(result.feature_set.build_state(history))
    when = dt.datetime(2026, 11, 28, 12)
    scored = score_rows(
        test.head(200), state, serving_model(result), semantics="arrival", scored_at=when
    ).scored
    assert (scored["is_flagged"] == (scored["fraud_probability"] >= scored["threshold"])).all()
    assert (
        scored["expected_loss"] - scored["fraud_probability"] * scored["amt"]
    ).abs().max() < 1e-9
    flagged = scored.filter("is_flagged")
    assert (flagged["expected_loss"] >= result.decision.min_expected_loss - 1e-9).all()
    assert set(scored["feature_set_version"]) == {"arrival-v1"}
    assert set(scored["feed_semantics"]) == {"arrival"}
    assert scored["scored_at"].unique().to_list() == [when]
