"""The feature sets: past-only history (event time), frozen card profiles (arrival), one
implementation for training and serving, no clock where there is none, no leakage."""

import datetime as dt

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from fraud_assets.lib.features import (
    FEATURE_FAMILY,
    FEATURE_LABELS,
    FEATURE_SETS,
    INPUT_COLUMNS,
    IncompatibleModel,
    feature_set,
    for_semantics,
)
from fraud_assets.lib.features.history import (
    NO_PREVIOUS_SECS,
    compute_features,
    features_with_history,
)
from fraud_assets.lib.features.profile import build_profiles, serving_features, training_features

ARRIVAL = for_semantics("arrival")


def _card_rows(times: list[str], amts: list[float], cats: list[str] | None = None) -> pl.DataFrame:
    n = len(times)
    return pl.DataFrame(
        {
            "trans_num": [f"t{i}" for i in range(n)],
            "event_time": [dt.datetime.fromisoformat(t) for t in times],
            "cc_num": ["4000000000000000"] * n,
            "category": cats or ["grocery_pos"] * n,
            "amt": amts,
            "gender": ["F"] * n,
            "dob": ["1980-06-15"] * n,
            "city_pop": [1000] * n,
            "lat": [40.0] * n,
            "long": [-75.0] * n,
            "merch_lat": [40.0] * n,
            "merch_long": [-74.0] * n,
            "is_fraud": [0] * n,
        }
    ).with_columns(pl.col("event_time").cast(pl.Datetime("ms")))


def test_history_counts_only_strictly_earlier_transactions() -> None:
    rows = _card_rows(
        [
            "2020-01-01 10:00:00",
            "2020-01-01 10:30:00",
            "2020-01-01 10:30:00",
            "2020-01-01 12:00:00",
            "2020-01-09 12:00:00",
        ],
        [10, 20, 30, 40, 50],
    )
    f = compute_features(rows)
    assert f["count_1h"].to_list() == [0, 1, 1, 0, 0]  # the twin at 10:30 does not count
    assert f["amt_sum_24h"].to_list() == [0, 10, 10, 60, 0]
    assert f["count_7d"].to_list() == [0, 1, 1, 3, 0]
    assert f["card_tx_number"].to_list() == [0, 1, 2, 3, 4]
    assert f["secs_since_prev"].to_list() == [NO_PREVIOUS_SECS, 1800, 0, 5400, 8 * 86400]
    assert f["amt_vs_card_mean"][0] == 1.0
    assert f["amt_vs_card_mean"][3] == pytest.approx(40 / 20)


def test_night_and_amount_history_use_only_earlier_transactions() -> None:
    rows = _card_rows(
        [
            "2020-01-01 12:00:00",  # day
            "2020-01-01 23:00:00",  # night
            "2020-01-02 01:00:00",  # night
            "2020-01-02 01:00:00",  # night, a same-time twin
            "2020-01-03 02:00:00",  # night, more than 24 h after the first night row
        ],
        [10, 100, 30, 50, 20],
        ["home", "shopping_net", "home", "home", "home"],
    )
    f = compute_features(rows)
    # The twin does not see its twin; the last row's 24 h window starts after 01:00.
    assert f["night_count_24h"].to_list() == [0, 0, 1, 1, 0]
    assert f["night_amt_sum_24h"].to_list() == [0, 0, 100, 100, 0]
    assert f["night_count_7d"].to_list() == [0, 0, 1, 1, 3]
    assert f["amt_max_24h"].to_list() == [0, 10, 100, 100, 0]
    assert f["prev_amt"].to_list() == [0, 10, 100, 30, 50]
    assert f["prev_hour"].to_list() == [-1, 12, 23, 1, 1]
    assert f["amt_vs_card_max"].to_list() == pytest.approx([1.0, 10.0, 0.3, 0.5, 0.2])
    assert f["card_night_share"].to_list() == pytest.approx([0, 0, 0.5, 2 / 3, 3 / 4])
    # Per (card, category): the second home purchase is 30 against an earlier mean of 10.
    assert f["amt_vs_card_category_mean"].to_list() == pytest.approx([1, 1, 3, 2.5, 20 / 30])
    assert f["amt_zscore"][0] == 0.0 and f["amt_zscore"][1] == 0.0
    assert f["amt_zscore"][2] == pytest.approx((30 - 55) / 45)  # mean 55, std 45 of 10, 100
    assert f["is_home"].to_list() == [1, 0, 1, 1, 1]
    assert f["is_shopping_net"].to_list() == [0, 1, 0, 0, 0]


def test_row_features_are_computed_from_event_time_and_coordinates() -> None:
    f = compute_features(
        _card_rows(["2020-06-14 23:30:00", "2020-06-15 08:00:00"], [5, 5], ["home", "shopping_net"])
    )
    assert f["hour"].to_list() == [23, 8]
    assert f["day_of_week"].to_list() == [6, 0]  # Sunday, Monday
    assert f["age_years"][0] == pytest.approx(39.999, abs=0.01)  # at the event, not today
    assert f["age_years"][1] == pytest.approx(40.0, abs=0.01)
    assert f["distance_km"][0] == pytest.approx(84.9, abs=0.5)  # one degree of longitude at 40N
    assert f["is_new_category"].to_list() == [1, 1]


@pytest.mark.parametrize("cut", ["2020-02-01", "2020-03-15", "2020-04-25"])
def test_online_features_with_stored_history_equal_offline_features(dataset, cut: str) -> None:
    """Scoring a later batch with history read from storage gives the offline features."""
    data = dataset.canonical
    when = dt.datetime.fromisoformat(cut)
    history, batch = (
        data.filter(pl.col("event_time") < when),
        data.filter(pl.col("event_time") >= when),
    )
    offline = compute_features(data).filter(pl.col("trans_num").is_in(batch["trans_num"].implode()))
    online = features_with_history(batch, history)
    assert online.height == batch.height
    assert_frame_equal(online.sort("trans_num"), offline.sort("trans_num"))


def test_parity_check_notices_missing_history(dataset) -> None:
    """The parity comparison has teeth: dropping the stored history changes the features."""
    data = dataset.canonical
    when = dt.datetime(2020, 3, 15)
    batch = data.filter(pl.col("event_time") >= when)
    offline = compute_features(data).filter(pl.col("trans_num").is_in(batch["trans_num"].implode()))
    without = features_with_history(batch, data.clear())
    with pytest.raises(AssertionError):
        assert_frame_equal(without.sort("trans_num"), offline.sort("trans_num"))


@pytest.mark.parametrize("fs", list(FEATURE_SETS.values()), ids=lambda fs: fs.version)
def test_labels_and_identifiers_never_become_features(dataset, fs) -> None:
    forbidden = {
        "is_fraud",
        "label_is_fraud",
        "trans_num",
        "cc_num",
        "first",
        "last",
        "street",
        "merchant",
        "job",
        "zip",
        "unix_time",
        "current_time",
    }
    assert not forbidden & set(fs.features)
    assert "is_fraud" not in INPUT_COLUMNS
    data = dataset.canonical.head(2000)
    scrambled = data.with_columns(
        is_fraud=1 - pl.col("is_fraud"),
        first=pl.lit("X"),
        merchant=pl.lit("fraud_Y"),
        job=pl.lit("Z"),
    )
    lag = dt.timedelta(days=1)
    assert (
        fs.training_features(data, lag)
        .select(fs.features)
        .equals(fs.training_features(scrambled, lag).select(fs.features))
    )


def test_every_feature_has_a_human_label_and_a_family() -> None:
    every = {f for fs in FEATURE_SETS.values() for f in fs.features}
    assert every <= set(FEATURE_LABELS) and every <= set(FEATURE_FAMILY)


# --- arrival feeds: card profiles ----------------------------------------------------------


def test_a_profile_holds_the_cards_aggregates() -> None:
    rows = _card_rows(
        ["2020-01-01 23:00:00", "2020-01-02 12:00:00", "2020-01-03 12:00:00"],
        [100.0, 300.0, 20.0],
        ["shopping_net", "shopping_net", "home"],
    )
    profiles = build_profiles(rows)
    card = profiles.filter(pl.col("category") == "*").row(0, named=True)
    assert card["n"] == 3 and card["amt_sum"] == 420 and card["amt_max"] == 300
    assert card["night_n"] == 1 and card["big_n"] == 1 and card["n_categories"] == 2
    shop = profiles.filter(pl.col("category") == "shopping_net").row(0, named=True)
    assert shop["n"] == 2 and shop["amt_sumsq"] == 100**2 + 300**2


def test_profile_features_compare_the_row_with_the_cards_norms() -> None:
    history = _card_rows(
        ["2020-01-01 23:00:00", "2020-01-02 12:00:00", "2020-01-03 12:00:00"],
        [100.0, 300.0, 20.0],
        ["shopping_net", "shopping_net", "home"],
    )
    rows = _card_rows(["2026-11-28 10:00:00", "2026-11-28 10:00:01"], [800.0, 5.0])
    rows = rows.with_columns(category=pl.Series(["shopping_net", "travel"]), trans_num=["x", "y"])
    f = serving_features(rows, build_profiles(history))
    assert f["card_tx_count"].to_list() == [3, 3]
    assert f["amt_vs_card_mean"][0] == pytest.approx(800 / 140)
    assert f["amt_vs_category_mean"][0] == pytest.approx(800 / 200)
    assert f["amt_vs_category_max"][0] == pytest.approx(800 / 300)
    assert f["category_share"].to_list() == pytest.approx([2 / 3, 0.0])
    assert f["is_new_category"].to_list() == [0, 1]
    assert f["card_night_share"][0] == pytest.approx(1 / 3)


def test_an_unknown_card_gets_the_neutral_profile_values() -> None:
    rows = _card_rows(["2026-11-28 10:00:00"], [50.0]).with_columns(cc_num=pl.lit("99999999"))
    history = _card_rows(["2020-01-01 10:00:00"], [10.0])
    f = serving_features(rows, build_profiles(history)).row(0, named=True)
    assert f["card_tx_count"] == 0 and f["is_new_category"] == 1
    assert f["amt_vs_card_mean"] == 1.0 and f["amt_log_zscore"] == 0.0


def test_arrival_features_read_no_clock(dataset) -> None:
    """Arrival time, order and density change nothing: the same rows at other times, shuffled
    and repeated, get the same features."""
    history = dataset.canonical.filter(pl.col("event_time") < dt.datetime(2020, 4, 1))
    rows = dataset.canonical.filter(pl.col("event_time") >= dt.datetime(2020, 4, 1)).head(500)
    state = ARRIVAL.build_state(history)
    base = ARRIVAL.serving_features(rows, state).select(ARRIVAL.features)
    moved = rows.with_columns(event_time=pl.lit(dt.datetime(2031, 1, 1, 3, 0)))
    shuffled = pl.concat([moved, moved]).sample(fraction=1.0, shuffle=True, seed=1)
    again = ARRIVAL.serving_features(shuffled, state)
    joined = again.join(
        ARRIVAL.serving_features(rows, state).select("trans_num", *ARRIVAL.features),
        on="trans_num",
        suffix="_base",
    )
    for name in ARRIVAL.features:
        assert joined[name].equals(joined[f"{name}_base"], check_names=False), name
    assert base.height == 500


@pytest.mark.parametrize("cut", ["2020-02-15", "2020-04-01"])
def test_training_and_serving_compute_profiles_through_the_same_functions(dataset, cut) -> None:
    """A row's training features (profile as of its time, lag 0) equal its serving features
    against the profile frozen just before it: the same aggregation and comparison code."""
    when = dt.datetime.fromisoformat(cut)
    history = dataset.canonical.filter(pl.col("event_time") < when)
    later = dataset.canonical.filter(pl.col("event_time") >= when)
    first_per_card = later.sort("event_time").unique("cc_num", keep="first").head(40)
    train_side = training_features(pl.concat([history, first_per_card]), dt.timedelta(0))
    train_side = train_side.filter(pl.col("trans_num").is_in(first_per_card["trans_num"].implode()))
    serve_side = serving_features(first_per_card, build_profiles(history))
    cols = ["trans_num", *ARRIVAL.features]
    assert_frame_equal(
        train_side.select(cols).sort("trans_num"),
        serve_side.select(cols).sort("trans_num"),
        check_exact=False,
        rel_tol=1e-9,
    )


def test_training_profiles_lag_behind_the_row(dataset) -> None:
    """With a lag, a row's profile leaves out the card's rows of the lag before it."""
    rows = _card_rows(
        ["2020-01-01 10:00:00", "2020-01-05 10:00:00", "2020-01-05 11:00:00"], [10, 20, 30]
    )
    f = training_features(rows, dt.timedelta(days=1))
    assert f["card_tx_count"].to_list() == [0, 1, 1]  # the 10:00 row is too recent for 11:00


# --- versions ---------------------------------------------------------------------------


def test_a_model_for_another_semantics_or_version_is_refused() -> None:
    ARRIVAL.check_model("arrival", ARRIVAL.version)
    with pytest.raises(IncompatibleModel, match="'payload' feeds"):
        ARRIVAL.check_model("payload", "event-v2")
    with pytest.raises(IncompatibleModel, match="arrival-v0"):
        ARRIVAL.check_model("arrival", "arrival-v0")
    with pytest.raises(IncompatibleModel, match="unknown feature-set version"):
        feature_set("v1")
