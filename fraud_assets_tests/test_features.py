"""One feature implementation: past-only history, online/offline parity, no leakage."""

import datetime as dt

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from fraud_assets.lib.features import (
    FEATURES,
    INPUT_COLUMNS,
    NO_PREVIOUS_SECS,
    compute_features,
    features_with_history,
)


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


def test_labels_and_identifiers_never_become_features(dataset) -> None:
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
    assert not forbidden & set(FEATURES)
    assert "is_fraud" not in INPUT_COLUMNS
    data = dataset.canonical.head(2000)
    scrambled = data.with_columns(
        is_fraud=1 - pl.col("is_fraud"),
        first=pl.lit("X"),
        merchant=pl.lit("fraud_Y"),
        job=pl.lit("Z"),
    )
    assert (
        compute_features(data).select(FEATURES).equals(compute_features(scrambled).select(FEATURES))
    )


def test_every_feature_has_a_human_label() -> None:
    from fraud_assets.lib.features import FEATURE_LABELS

    assert set(FEATURE_LABELS) == set(FEATURES)
