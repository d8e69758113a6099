"""The app's pure logic, without Gradio: dashboard figures, form validation, explanation,
analyst feedback storage, and the Hugging Face Space files."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import polars as pl
import pytest

from app_gradio import data
from app_gradio.app import kpi_html
from app_gradio.scoring import InvalidTransaction, parse_form
from fraud_assets.lib.feedback import read_labels, record_label, with_analyst_labels
from fraud_assets.lib.schema import SCORED_TRANSACTIONS_SCHEMA
from fraud_assets.lib.warehouse import Warehouse

ROOT = Path(__file__).resolve().parents[1]
T0 = dt.datetime(2024, 5, 1, 12, 0)


def scored_frame() -> pl.DataFrame:
    """Five scored rows: three flagged (one a missed label), two passed (one a missed fraud)."""
    rows = [
        # trans_num, minutes after T0, category, amt, probability, flagged, label
        ("a", 0, "shopping_net", 900.0, 0.91, True, 1),
        ("b", 30, "grocery_pos", 40.0, 0.75, True, 0),
        ("c", 60 * 30, "shopping_net", 300.0, 0.60, True, None),
        ("d", 60 * 30 + 5, "travel", 20.0, 0.10, False, 1),
        ("e", 60 * 30 + 9, "travel", 10.0, 0.02, False, 0),
    ]
    return pl.DataFrame(
        [
            {
                "trans_num": t,
                "event_time": T0 + dt.timedelta(minutes=m),
                "cc_num": "4000123412341234",
                "merchant": "m",
                "category": c,
                "amt": a,
                "event_time_source": "arrival",
                "arrived_at": T0 + dt.timedelta(minutes=m),
                "fraud_probability": p,
                "expected_loss": p * a,
                "is_flagged": f,
                "threshold": 0.5,
                "model_name": "fraud_rf",
                "model_version": "3" if t != "e" else "4",
                "feature_set_version": "arrival-v1",
                "feed_semantics": "arrival",
                "scored_at": T0 + dt.timedelta(minutes=m + 1),
                "label_is_fraud": y,
                "batch_hour": "h",
            }
            for t, m, c, a, p, f, y in rows
        ],
        schema=SCORED_TRANSACTIONS_SCHEMA,
    )


NO_LABELS = pl.DataFrame(schema={"trans_num": pl.String, "is_fraud": pl.Int8, "analyst": str})


def test_summary_counts_flags_amount_and_live_precision_recall() -> None:
    s = data.summarize(scored_frame())
    assert (s.scored, s.flagged, s.amount_at_risk) == (5, 3, 1240.0)
    assert s.flag_rate == pytest.approx(0.6)
    assert s.model_version == "4"  # the version of the latest scoring
    # Labelled: a (flag, fraud), b (flag, legit), d (pass, fraud), e (pass, legit).
    assert (s.labelled, s.labelled_frauds) == (4, 2)
    assert s.precision == pytest.approx(0.5) and s.recall == pytest.approx(0.5)


def test_no_data_says_so_instead_of_showing_zeros() -> None:
    empty = pl.DataFrame(schema=SCORED_TRANSACTIONS_SCHEMA)
    s = data.summarize(empty)
    assert s.scored == 0 and s.precision is None
    assert "No scored transactions yet" in kpi_html(s)
    assert data.over_time(empty).height == 0
    assert data.flagged_table(empty, NO_LABELS).height == 0


def test_kpi_cards_show_the_headline_numbers() -> None:
    page = kpi_html(data.summarize(scored_frame()))
    cards = dict(re.findall(r'data-kpi="(\w+)".*?class="value">([^<]*)<', page))
    assert cards == {
        "scored": "5",
        "flagged": "3",
        "flag_rate": "60.00%",
        "amount_at_risk": "$1,240.00",
        "model_version": "4",
        "precision": "50.0%",
        "recall": "50.0%",
    }


def test_breakdowns_by_category_and_hour() -> None:
    cats = data.by_category(scored_frame())
    shopping = cats.filter(pl.col("category") == "shopping_net").row(0, named=True)
    assert shopping["scored"] == 2 and shopping["flagged"] == 2
    assert shopping["amount_flagged"] == 1200.0 and shopping["flag_rate"] == 1.0
    hours = data.by_hour(scored_frame())
    assert hours["hour"].to_list() == [12, 18]
    assert hours["scored"].to_list() == [2, 3] and hours["flagged"].to_list() == [2, 1]


def test_trend_has_both_metrics_per_bucket() -> None:
    trend = data.over_time(scored_frame())
    first = trend.filter(pl.col("time") == T0)
    assert dict(zip(first["metric"], first["value"], strict=True)) == pytest.approx(
        {"mean probability": 0.83, "flag rate": 1.0}
    )


def test_flagged_table_filters_masks_cards_and_shows_verdicts() -> None:
    scored = scored_frame()
    labels = pl.DataFrame({"trans_num": ["b"], "is_fraud": [0], "analyst": ["ann"]})
    table = data.flagged_table(scored, labels)
    assert table["trans_num"].to_list() == ["c", "b", "a"]  # newest first, flagged only
    assert set(table["card"]) == {"•••• 1234"}
    assert table.filter(pl.col("trans_num") == "b")["analyst_label"][0] == "not fraud (ann)"
    assert table.filter(pl.col("trans_num") == "c")["api_label"][0] == "pending"
    assert data.flagged_table(scored, labels, min_probability=0.8)["trans_num"].to_list() == ["a"]
    assert data.flagged_table(scored, labels, min_amount=100)["trans_num"].to_list() == ["c", "a"]
    assert data.flagged_table(scored, labels, category="grocery_pos")["trans_num"].to_list() == [
        "b"
    ]
    # "last 24 hours" counts back from the newest transaction (T0 + 30 h 9 min).
    recent = data.flagged_table(scored, labels, time_range="last 24 hours")
    assert recent["trans_num"].to_list() == ["c"]
    with pytest.raises(ValueError, match="unknown category"):
        data.flagged_table(scored, labels, category="casino")


FORM = dict(
    amount=25.0,
    category="grocery_pos",
    merchant_lat=40.1,
    merchant_long=-75.0,
    cardholder_lat=40.0,
    cardholder_long=-75.2,
    date_of_birth="1970-01-31",
    transaction_time="2024-05-01 12:00:00",
)
NOW = dt.datetime(2024, 6, 1)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("amount", -1, "amount must not be negative"),
        ("amount", None, "amount is required"),
        ("amount", "lots", "amount must be a number"),
        ("merchant_lat", 91, "merchant latitude must be between -90 and 90"),
        ("cardholder_long", 180.5, "cardholder longitude must be between -180 and 180"),
        ("date_of_birth", "2024-12-24", "date of birth 2024-12-24 is in the future"),
        ("date_of_birth", "31/01/1970", "date of birth must look like 1980-12-31"),
        ("category", "casino", "unknown category 'casino'"),
        ("transaction_time", "yesterday", "transaction time must look like"),
    ],
)
def test_invalid_form_input_is_named_in_the_message(field, value, message) -> None:  # noqa: ANN001
    with pytest.raises(InvalidTransaction, match=re.escape(message)):
        parse_form(**(FORM | {field: value}), now=NOW)


def test_every_problem_is_reported_at_once() -> None:
    with pytest.raises(InvalidTransaction) as info:
        parse_form(**(FORM | {"amount": -3, "category": "x", "cardholder_lat": -95}), now=NOW)
    assert len(info.value.problems) == 3


def test_a_valid_form_becomes_one_canonical_row_in_utc() -> None:
    tx = parse_form(
        **(FORM | {"transaction_time": "2024-05-01T14:00:00+02:00"}),
        card_number="4000 1234 5678 9010",
        gender="m",
        now=NOW,
    )
    assert tx.transaction_time == dt.datetime(2024, 5, 1, 12, 0)
    row = tx.to_frame().row(0, named=True)
    assert row["cc_num"] == "4000123456789010" and row["gender"] == "M"
    assert row["amt"] == 25.0 and row["dob"] == "1970-01-31" and row["city_pop"] is None


@pytest.fixture(params=["sqlite", "postgres"])
def warehouse(request, tmp_path) -> Warehouse:  # noqa: ANN001
    if request.param == "sqlite":
        return Warehouse(f"sqlite:///{tmp_path / 'wh.db'}")
    return Warehouse(request.getfixturevalue("pg_url"), request.getfixturevalue("pg_schema"))


def test_marking_twice_updates_the_verdict_and_never_duplicates(warehouse: Warehouse) -> None:
    record_label(warehouse, "t1", True, "alice", at=T0)
    record_label(warehouse, "t2", True, "alice", at=T0)
    record_label(warehouse, "t1", False, "bob", at=T0 + dt.timedelta(hours=1))
    labels = read_labels(warehouse).sort("trans_num")
    assert labels["trans_num"].to_list() == ["t1", "t2"]
    assert labels.row(0) == ("t1", 0, "bob", T0 + dt.timedelta(hours=1))
    with pytest.raises(ValueError, match="analyst"):
        record_label(warehouse, "t3", True, "  ")


def test_training_can_take_analyst_verdicts_as_labels() -> None:
    live = pl.DataFrame({"trans_num": ["a", "b", "c"], "is_fraud": [0, 0, 1]})
    labels = pl.DataFrame({"trans_num": ["a", "c"], "is_fraud": [1, 0], "analyst": ["x", "y"]})
    out = with_analyst_labels(live.cast({"is_fraud": pl.Int8}), labels).sort("trans_num")
    assert out.select("trans_num", "is_fraud").rows() == [("a", 1), ("c", 0)]


def test_space_files_pin_what_the_lock_pins() -> None:
    readme = (ROOT / "space" / "README.md").read_text()
    front = dict(re.findall(r"^(\w+): (.+)$", readme.split("---")[1], flags=re.M))
    assert front["sdk"] == "gradio" and front["app_file"] == "app.py"
    assert (ROOT / "space" / front["app_file"]).is_file()
    lock = dict(
        re.findall(r"^([a-z0-9_.-]+)==([^\s]+)", (ROOT / "requirements.lock").read_text(), re.M)
    )
    assert front["sdk_version"] == lock["gradio"]
    space_reqs = (ROOT / "space" / "requirements.txt").read_text()
    reqs = re.findall(r"^([a-z0-9_.-]+)(?:\[\w+\])?==([^\s]+)", space_reqs, re.M)
    assert reqs and all(lock[name] == version for name, version in reqs)
