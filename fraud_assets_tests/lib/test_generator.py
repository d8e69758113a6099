"""The generator writes the public layout, deterministically, with realistic fraud patterns."""

import io

import polars as pl
import pytest

from fraud_assets.lib.generator import GeneratorConfig, generate_transactions, write_csv
from fraud_assets.lib.schema import (
    TRANSACTION_SCHEMA,
    read_training_csv,
    validate_transactions,
)

# The header and first row of the real fraudTest.csv, as published (see shared/API.md).
REAL_HEADER = (
    ",trans_date_trans_time,cc_num,merchant,category,amt,first,last,gender,street,city,"
    "state,zip,lat,long,city_pop,job,dob,trans_num,unix_time,merch_lat,merch_long,"
    "is_fraud"
)
REAL_ROW = (
    "0,2020-06-21 12:14:25,2291163933867244,fraud_Kirlin and Sons,personal_care,2.86,Jeff,"
    "Elliott,M,351 Darlene Green,Columbia,SC,29209,33.9659,-80.9355,333497,"
    "Mechanical engineer,1968-03-19,2da90c7d74bd46a0caf3777415b3ebd3,1371816865,"
    "33.986391,-81.200714,0"
)


def _csv_text(frame: pl.DataFrame, tmp_path) -> str:  # noqa: ANN001
    path = tmp_path / "out.csv"
    write_csv(frame, path)
    return path.read_text()


def test_generated_csv_header_is_the_public_header(dataset, tmp_path) -> None:
    assert _csv_text(dataset.public.head(3), tmp_path).splitlines()[0] == REAL_HEADER


def test_generated_rows_read_exactly_like_the_real_sample_row(dataset, tmp_path) -> None:
    real = read_training_csv(io.BytesIO(f"{REAL_HEADER}\n{REAL_ROW}\n".encode()))
    ours = read_training_csv(io.StringIO(_csv_text(dataset.public.head(50), tmp_path)))
    assert real.schema == ours.schema == pl.Schema(TRANSACTION_SCHEMA)
    assert real["cc_num"][0] == "2291163933867244"
    assert validate_transactions(ours).null_count() == ours.height  # every row valid


def test_generated_fields_follow_the_public_formats(dataset) -> None:
    df = dataset.public
    assert df[""].to_list() == list(range(df.height))
    assert df["trans_num"].str.contains(r"^[0-9a-f]{32}$").all()
    assert df["trans_num"].n_unique() == df.height
    assert df["cc_num"].str.contains(r"^\d{15,19}$").all()
    assert df["dob"].str.contains(r"^\d{4}-\d{2}-\d{2}$").all()
    assert df["trans_date_trans_time"].str.contains(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$").all()
    assert df["merchant"].str.starts_with("fraud_").all()
    assert set(df["is_fraud"].unique()) == {0, 1}
    # unix_time lies exactly seven years before the event time, as in the public files.
    event = df["trans_date_trans_time"].str.to_datetime("%Y-%m-%d %H:%M:%S")
    assert (event.dt.offset_by("-7y").dt.epoch("s") == df["unix_time"]).all()


def test_same_seed_gives_identical_data_and_another_seed_does_not() -> None:
    config = GeneratorConfig(n_cards=20, seed=5)
    assert generate_transactions(config).equals(generate_transactions(config))
    other = generate_transactions(GeneratorConfig(n_cards=20, seed=6))
    assert not generate_transactions(config).equals(other)


def test_generated_fraud_has_the_known_patterns(dataset) -> None:
    df = dataset.canonical.with_columns(hour=pl.col("event_time").dt.hour())
    fraud, legit = df.filter(pl.col("is_fraud") == 1), df.filter(pl.col("is_fraud") == 0)
    night = [22, 23, 0, 1, 2, 3]
    assert fraud["hour"].is_in(night).mean() > 0.6 > 0.2 > legit["hour"].is_in(night).mean()
    assert fraud["amt"].mean() > 4 * legit["amt"].mean()
    assert fraud["amt"].max() <= 1400
    rates = df.group_by("category").agg(pl.col("is_fraud").mean()).sort("is_fraud", descending=True)
    assert {"shopping_net", "misc_net", "grocery_pos"} & set(rates["category"].head(4))
    # Bursts: a compromised card sees several frauds, not one.
    per_card = fraud.group_by("cc_num").len()
    assert per_card["len"].median() >= 3
    assert 0.002 < df["is_fraud"].mean() < 0.05


@pytest.mark.parametrize(
    ("column", "value", "reason"),
    [
        ("amt", -1.0, "amount missing or negative"),
        ("category", "crypto", "unknown category"),
        ("lat", 123.0, "lat out of range"),
        ("merch_long", -200.0, "merch_long out of range"),
        ("dob", "19/03/1968", "dob not YYYY-MM-DD"),
        ("cc_num", "12ab", "cc_num not 8-19 digits"),
    ],
)
def test_validation_names_what_is_wrong(dataset, column, value, reason) -> None:  # noqa: ANN001
    bad = dataset.canonical.head(3).with_columns(
        pl.lit(value, dtype=TRANSACTION_SCHEMA[column]).alias(column)
    )
    assert validate_transactions(bad).to_list() == [reason] * 3
