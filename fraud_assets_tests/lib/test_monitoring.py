"""Monitoring logic: delayed labels, drift that fires only on shifted data, performance and
flag-rate checks, and alerts that reach a webhook once per condition per window."""

import datetime as dt

import numpy as np
import polars as pl
import pytest
from fastapi import FastAPI, Request

from fraud_assets.lib import monitoring as mon
from fraud_assets.lib.alerts import Alert, raise_alerts
from fraud_assets.lib.schema import ALERTS_SCHEMA, SCORED_TRANSACTIONS_SCHEMA
from fraud_assets.lib.warehouse import Warehouse
from fraud_assets.testing.servers import serve_app

NOW = dt.datetime(2026, 11, 28, 12)


def scored(n: int, flagged_every: int = 50, fraud_every: int = 100, hours_ago: float = 30):
    rng = np.random.default_rng(0)
    return pl.DataFrame(
        {
            "trans_num": [f"t{i}" for i in range(n)],
            "amt": rng.uniform(1, 500, n),
            "fraud_probability": rng.random(n) * 0.01,
            "is_flagged": [i % flagged_every == 0 for i in range(n)],
            "label_is_fraud": [int(i % fraud_every == 0) for i in range(n)],
            "model_version": ["3"] * n,
            "arrived_at": [NOW - dt.timedelta(hours=hours_ago)] * n,
            "scored_at": [NOW - dt.timedelta(hours=hours_ago)] * n,
        }
    ).with_columns(pl.col("arrived_at", "scored_at").cast(pl.Datetime("ms")))


def test_api_labels_count_only_after_the_delay_and_verdicts_override_them() -> None:
    rows = pl.concat(
        [
            scored(3, hours_ago=30),
            scored(3, hours_ago=2).with_columns(trans_num=pl.Series(["u0", "u1", "u2"])),
        ]
    )
    verdicts = pl.DataFrame({"trans_num": ["t1", "u1"], "is_fraud": [1, 1]})
    out = mon.with_labels(rows, verdicts, NOW, dt.timedelta(hours=24)).sort("trans_num")
    labels = dict(zip(out["trans_num"], out["label"], strict=True))
    sources = dict(zip(out["trans_num"], out["label_source"], strict=True))
    assert labels["t0"] == 1 and sources["t0"] == "api"  # old enough: the API's label
    assert labels["t1"] == 1 and sources["t1"] == "analyst"  # the verdict wins
    assert labels["u0"] is None and sources["u0"] is None  # too recent: not known yet
    assert labels["u1"] == 1 and sources["u1"] == "analyst"  # verdicts need no delay


def _features(n: int, shift: float, seed: int) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    return pl.DataFrame(
        {
            "amt": rng.lognormal(4 + shift, 1, n),
            "card_tx_count": rng.poisson(500, n).astype(float),
            "is_shopping_net": (rng.random(n) < 0.1 + shift / 4).astype(float),
        }
    )


def test_drift_fires_on_shifted_data_and_stays_quiet_on_unshifted_data() -> None:
    reference = _features(20_000, 0.0, seed=1)
    same = _features(3000, 0.0, seed=2)
    shifted = _features(3000, 1.0, seed=3)
    cols = list(reference.columns)
    quiet = mon.psi(reference, same, cols)
    loud = mon.psi(reference, shifted, cols)
    assert max(quiet.values()) < 0.05 and mon.drift_check(quiet, same.height).passed
    assert loud["amt"] > mon.PSI_THRESHOLD and loud["is_shopping_net"] > 0.1
    verdict = mon.drift_check(loud, shifted.height)
    assert not verdict.passed and "amt" in verdict.reason


def test_a_performance_alert_fires_when_labels_say_the_model_is_failing() -> None:
    rows = scored(2000).with_columns(label=pl.col("label_is_fraud"))
    # flags fall on frauds: the model works
    working = rows.with_columns(is_flagged=pl.col("label") == 1)
    assert mon.performance_check(working, 0.5, 0.8).passed
    # flags miss every fraud: failing
    failing = rows.with_columns(is_flagged=(pl.col("label") == 0) & (pl.int_range(2000) % 7 == 0))
    verdict = mon.performance_check(failing, 0.5, 0.8)
    assert not verdict.passed and "failing" in verdict.reason
    # too few labelled frauds to tell: no alert
    assert mon.performance_check(failing.head(300), 0.5, 0.8).passed


@pytest.mark.parametrize(
    ("flagged", "rows", "passes"),
    [(10, 1000, True), (200, 1000, False), (0, 5000, False), (3, 100, True)],
)
def test_flag_rate_is_held_to_the_bounds_learned_at_training(flagged, rows, passes) -> None:
    assert mon.flag_rate_check(flagged, rows, expected=0.01).passed is passes


def test_daily_performance_is_per_day_and_model_version() -> None:
    rows = pl.concat(
        [
            scored(500).with_columns(label=pl.col("label_is_fraud")),
            scored(500, hours_ago=50).with_columns(
                label=pl.col("label_is_fraud"), model_version=pl.lit("4")
            ),
        ]
    )
    daily = mon.daily_performance(rows, 5.0, NOW)
    assert daily.height == 2 and set(daily["model_version"]) == {"3", "4"}
    assert daily["rows"].to_list() == [500, 500] and daily["frauds"].to_list() == [5, 5]


@pytest.fixture
def webhook():
    """A real HTTP receiver standing in for Slack."""
    received: list[dict] = []
    app = FastAPI()

    @app.post("/hook")
    async def hook(request: Request) -> dict:
        received.append(await request.json())
        return {"ok": True}

    with serve_app(app) as url:
        yield f"{url}/hook", received


def test_alerts_reach_the_webhook_once_per_condition_per_window(
    tmp_path, webhook, monkeypatch
) -> None:
    url, received = webhook
    monkeypatch.setenv("FRAUD_DATABASE_URL", "postgresql://fraud:s3cr3t-pw@db:5432/w")
    wh = Warehouse(f"sqlite:///{tmp_path / 'wh.db'}")
    alert = Alert(
        "check:live_performance:flag_rate_within_bounds",
        "flag rate 0.4 outside [0.001, 0.03]; db postgresql://fraud:s3cr3t-pw@db/w",
    )
    for minute in (0, 5, 30):  # three ticks in one hour-long window
        raise_alerts(wh, [alert], NOW + dt.timedelta(minutes=minute), 60, url)
    assert len(received) == 1
    assert "flag_rate_within_bounds" in received[0]["text"]
    assert "s3cr3t-pw" not in received[0]["text"]  # no secret ever appears in an alert
    raise_alerts(wh, [alert], NOW + dt.timedelta(hours=1), 60, url)  # the next window
    assert len(received) == 2
    stored = wh.read("alerts", ALERTS_SCHEMA)
    assert stored.height == 2 and stored["delivered"].all()


def test_an_unreachable_webhook_still_records_and_logs_the_alert(tmp_path, caplog) -> None:
    wh = Warehouse(f"sqlite:///{tmp_path / 'wh.db'}")
    sent = raise_alerts(
        wh, [Alert("run:scoring_job", "run failed")], NOW, 60, "http://127.0.0.1:9/hook"
    )
    assert len(sent) == 1
    [row] = wh.read("alerts", ALERTS_SCHEMA).rows(named=True)
    assert row["delivered"] is False and row["sink"] == "webhook"
    assert "run:scoring_job" in caplog.text


def test_scored_rows_have_what_monitoring_reads() -> None:
    assert {"arrived_at", "label_is_fraud", "model_version", "is_flagged"} <= set(
        SCORED_TRANSACTIONS_SCHEMA
    )
