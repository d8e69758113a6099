"""The app's logic, without Gradio: dashboard figures (SQL on SQLite and PostgreSQL, checked
against polars), the shared snapshot, rate limiting, monitoring reads, form validation, analyst
feedback storage, and the Hugging Face Space files."""

from __future__ import annotations

import datetime as dt
import re
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from app_gradio import data, monitoring
from app_gradio.app import kpi_html
from app_gradio.dashboard import Dashboard
from app_gradio.scoring import InvalidTransaction, parse_form
from app_gradio.snapshot import SnapshotCache
from app_gradio.views import paths_html
from fraud_assets.lib import decision_log
from fraud_assets.lib.feedback import read_labels, record_label
from fraud_assets.lib.ratelimit import RateLimiter, retry_message
from fraud_assets.lib.schema import (
    CATEGORIES,
    SCORED_TRANSACTIONS_SCHEMA,
)
from fraud_assets.lib.warehouse import Warehouse
from fraud_assets_tests.helpers.app import T0, monitoring_rows, scored_frame, stored

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(params=["sqlite", "postgres"])
def warehouse(request, tmp_path) -> Warehouse:  # noqa: ANN001
    if request.param == "sqlite":
        return Warehouse(f"sqlite:///{tmp_path / 'wh.db'}")
    return Warehouse(request.getfixturevalue("pg_url"), request.getfixturevalue("pg_schema"))


def test_summary_counts_flags_amount_and_live_precision_recall(warehouse: Warehouse) -> None:
    s = data.summarize(stored(warehouse, scored_frame()))
    assert (s.scored, s.flagged, s.amount_at_risk) == (5, 3, 1240.0)
    assert s.flag_rate == pytest.approx(0.6)
    assert s.model_version == "4"  # the version of the latest scoring
    # Labelled: a (flag, fraud), b (flag, legit), d (pass, fraud), e (pass, legit).
    assert (s.labelled, s.labelled_frauds) == (4, 2)
    assert s.precision == pytest.approx(0.5) and s.recall == pytest.approx(0.5)
    assert s.newest_event == "2024-05-02 18:09:00"


@pytest.mark.parametrize("table", ["missing", "empty"])
def test_no_data_says_so_instead_of_showing_zeros(warehouse: Warehouse, table: str) -> None:
    if table == "empty":
        stored(warehouse, scored_frame().clear())
    s = data.summarize(warehouse)
    assert s.scored == 0 and s.precision is None
    assert "No scored transactions yet" in kpi_html(s)
    assert data.window_start(warehouse, "last hour") is None
    assert data.over_time(data.hourly(warehouse)).height == 0
    assert data.by_category(warehouse).height == 0
    assert data.by_hour(data.hourly(warehouse)).height == 0
    assert data.flagged_table(warehouse).height == 0
    assert data.by_path(warehouse).height == 0
    logged = data.logged(warehouse, NOW_UTC)
    assert logged.figures.height == 0 and logged.newest is None
    assert logged.of("service") == data.NOTHING_LOGGED
    page = paths_html(data.by_path(warehouse), logged)
    assert "Newest logged decision: none yet" in page
    assert re.findall(r'data-kpi="service_(\w+)".*?class="value">([^<]*)<', page) == [
        ("decisions", "0"),
        ("review_rate", "n/a"),
        ("p50", "n/a"),
        ("p99", "n/a"),
    ]


def test_kpi_cards_show_the_headline_numbers(warehouse: Warehouse) -> None:
    page = kpi_html(data.summarize(stored(warehouse, scored_frame())))
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


def test_breakdowns_by_category_and_hour(warehouse: Warehouse) -> None:
    stored(warehouse, scored_frame())
    cats = data.by_category(warehouse)
    shopping = cats.filter(pl.col("category") == "shopping_net").row(0, named=True)
    assert shopping["scored"] == 2 and shopping["flagged"] == 2
    assert shopping["amount_flagged"] == 1200.0 and shopping["flag_rate"] == 1.0
    hours = data.by_hour(data.hourly(warehouse))
    assert hours["hour"].to_list() == [12, 18]
    assert hours["scored"].to_list() == [2, 3] and hours["flagged"].to_list() == [2, 1]


def test_trend_has_both_metrics_per_bucket(warehouse: Warehouse) -> None:
    trend = data.over_time(data.hourly(stored(warehouse, scored_frame())))
    first = trend.filter(pl.col("time") == T0)
    assert dict(zip(first["metric"], first["value"], strict=True)) == pytest.approx(
        {"mean probability": 0.83, "flag rate": 1.0}
    )


def test_the_time_range_bounds_every_figure(warehouse: Warehouse) -> None:
    """ "last 24 hours" counts back from the newest transaction (T0 + 30 h 9 min)."""
    stored(warehouse, scored_frame())
    since = data.window_start(warehouse, "last 24 hours")
    assert since == T0 + dt.timedelta(hours=6, minutes=9)
    s = data.summarize(warehouse, since)
    assert (s.scored, s.flagged, s.labelled) == (3, 1, 2) and s.precision is None
    assert data.by_category(warehouse, since)["category"].to_list() == ["shopping_net", "travel"]
    assert data.by_hour(data.hourly(warehouse, since))["hour"].to_list() == [18]
    with pytest.raises(ValueError, match="time range must be one of"):
        data.window_start(warehouse, "last decade")


def test_flagged_table_filters_masks_cards_and_shows_verdicts(warehouse: Warehouse) -> None:
    stored(warehouse, scored_frame())
    record_label(warehouse, "b", False, "ann", at=T0)
    table = data.flagged_table(warehouse)
    assert table["trans_num"].to_list() == ["c", "b", "a"]  # newest first, flagged only
    assert set(table["card"]) == {"•••• 1234"}
    assert table.filter(pl.col("trans_num") == "b")["analyst_label"][0] == "not fraud (ann)"
    assert table.filter(pl.col("trans_num") == "c")["api_label"][0] == "pending"

    def ids(**filters) -> list[str]:  # noqa: ANN003
        return data.flagged_table(warehouse, **filters)["trans_num"].to_list()

    assert ids(min_probability=0.8) == ["a"]
    assert ids(min_amount=100) == ["c", "a"]
    assert ids(category="grocery_pos") == ["b"]
    assert ids(since=data.window_start(warehouse, "last 24 hours")) == ["c"]
    assert ids(limit=2) == ["c", "b"]
    with pytest.raises(ValueError, match="unknown category"):
        data.flagged_table(warehouse, category="casino")


# --- decisions by path, and the decision log's own figures ------------------------------------

#: The wall clock the decision log's window ends at, in these tests.
NOW_UTC = dt.datetime(2024, 5, 2, 18, 30)


def log_frame(rows: list[tuple]) -> pl.DataFrame:
    """decision_log rows of (trans_num, decided_by, logged_at, server_ms, is_flagged); the
    other columns null."""
    given = {
        "trans_num": pl.String,
        "decided_by": pl.String,
        "logged_at": pl.Datetime("ms"),
        "server_ms": pl.Float64,
        "is_flagged": pl.Boolean,
    }
    frame = pl.DataFrame(rows, schema=given, orient="row")
    missing = [pl.lit(None, t).alias(c) for c, t in decision_log.DECISION_LOG_SCHEMA.items()]
    return frame.with_columns(e for e in missing if e.meta.output_name() not in given).select(
        list(decision_log.DECISION_LOG_SCHEMA)
    )


def logged_in(wh: Warehouse, frame: pl.DataFrame) -> Warehouse:
    decision_log.ensure_log(wh)
    decision_log.record(wh, frame)
    return wh


def test_decisions_by_path_count_null_as_polled(warehouse: Warehouse) -> None:
    paths = {"a": "service", "b": None, "c": "stream", "d": "poll", "e": "poll"}
    scored = scored_frame().with_columns(decided_by=pl.col("trans_num").replace_strict(paths))
    rows = data.by_path(stored(warehouse, scored))
    assert rows.select(
        "decided_via", "decided_by", "scored", "flagged", "amount_flagged"
    ).rows() == [
        ("polled", "poll", 3, 1, 40.0),  # b (NULL), d, e
        ("decision service", "service", 1, 1, 900.0),
        ("stream", "stream", 1, 1, 300.0),
    ]
    assert rows["flag_rate"].to_list() == [0.3333, 1.0, 1.0]
    since = data.window_start(warehouse, "last 24 hours")
    assert data.by_path(warehouse, since)["decided_via"].to_list() == [
        "polled",
        "stream",
    ]  # c, d, e
    summary, same = data.summary_and_paths(warehouse)
    assert summary == data.summarize(warehouse)
    assert_frame_equal(same, rows)


def test_decision_log_figures_per_path_over_the_recent_window(warehouse: Warehouse) -> None:
    minute = dt.timedelta(minutes=1)
    recent = [
        (f"s{i}", "service", NOW_UTC - (i % 10) * minute, float(i), i % 4 == 0)
        for i in range(1, 101)
    ]
    old = [(f"old{i}", "service", NOW_UTC - 20 * minute, 5000.0, True) for i in range(50)]
    stream = [(f"t{i}", "stream", NOW_UTC - minute, 2.0 * i, i == 1) for i in range(1, 4)]
    logged = data.logged(logged_in(warehouse, log_frame(recent + old + stream)), NOW_UTC)
    service = logged.of("service")
    assert service == {
        "decisions": 100,  # the 50 decisions of 20 minutes ago are outside the window
        "reviews": 25,
        "server_ms_p50": 50.0,  # nearest rank: the 50th of 100
        "server_ms_p99": 99.0,
        "review_rate": 0.25,
    }
    assert logged.of("stream") | {"review_rate": None} == {
        "decisions": 3,
        "reviews": 1,
        "server_ms_p50": 4.0,  # the 2nd of 3
        "server_ms_p99": 6.0,  # the 3rd of 3
        "review_rate": None,
    }
    assert logged.newest == NOW_UTC
    assert logged.of("none such") == data.NOTHING_LOGGED
    narrow = data.logged_figures(warehouse, NOW_UTC, window=dt.timedelta(seconds=30))
    assert narrow["decisions"].to_list() == [10]  # the service's decisions logged just now


def test_paths_html_shows_every_path_and_the_services_own_figures(warehouse: Warehouse) -> None:
    service_but_e = pl.when(pl.col("trans_num") == "e").then(None).otherwise(pl.lit("service"))
    stored(warehouse, scored_frame().with_columns(decided_by=service_but_e))
    rows = [(f"s{i}", "service", NOW_UTC, float(i), i == 1) for i in range(1, 5)]
    logged_in(warehouse, log_frame(rows))
    page = paths_html(data.by_path(warehouse), data.logged(warehouse, NOW_UTC))
    cards = dict(re.findall(r'data-kpi="(\w+)".*?class="value">([^<]*)<', page))
    assert cards == {
        "path_poll": "1",
        "path_service": "4",
        "path_stream": "0",  # every path is shown, 0 when it decided nothing
        "service_decisions": "4",
        "service_review_rate": "25.0%",
        "service_p50": "2.0 ms",
        "service_p99": "4.0 ms",
    }
    assert "80.0% of decisions" in page and "last 15 min" in page
    assert "Newest logged decision: 2024-05-02 18:30:00 UTC" in page


def test_the_decision_log_figures_are_one_snapshot_for_every_time_range(tmp_path: Path) -> None:
    wh = stored(Warehouse(f"sqlite:///{tmp_path / 'wh.db'}"), scored_frame())
    logged_in(wh, log_frame([("s1", "service", NOW_UTC, 3.0, False)]))
    dash = Dashboard(lambda: wh, ttl=60, now=lambda: NOW_UTC)
    views = [dash.aggregates(r) for r in ("all", "last hour", "last 24 hours")]
    assert {v.figures["decision_log"]["service"]["decisions"] for v in views} == {1}
    assert views[0].figures["by_path"] == {"polled": {"scored": 5, "flagged": 3, "flag_rate": 0.6}}
    computed = dash.cache.computations
    dash.logged()
    assert dash.cache.computations == computed  # shared, not once per time range
    assert views[0].logged is views[1].logged is views[2].logged
    dash.close()


# --- the SQL figures against the same figures computed by polars on the same rows -----------


def random_scored(n: int = 3000, days: int = 10, seed: int = 7) -> pl.DataFrame:
    """Scored rows over ``days`` (at millisecond times), with every kind of label, several
    model versions and every category."""
    rng = np.random.default_rng(seed)
    start = dt.datetime(2024, 3, 1, 5, 17)
    offsets = np.sort(rng.integers(0, days * 86_400_000, n))
    times = [start + dt.timedelta(milliseconds=int(ms)) for ms in offsets]
    proba = rng.beta(0.5, 6, n)
    amounts = rng.lognormal(3.5, 1.2, n).round(2)
    label = rng.choice([0, 1, -1], n, p=[0.6, 0.1, 0.3])
    return pl.DataFrame(
        {
            "trans_num": [f"tx{i:05d}" for i in range(n)],
            "event_time": times,
            "cc_num": [str(x) for x in rng.integers(10**15, 10**16, n)],
            "merchant": "m",
            "category": rng.choice(CATEGORIES, n),
            "amt": amounts,
            "event_time_source": "arrival",
            "arrived_at": times,
            "fraud_probability": proba,
            "expected_loss": proba * amounts,
            "is_flagged": proba > 0.25,
            "threshold": 0.25,
            "model_name": "fraud_rf",
            "model_version": rng.choice(["3", "4", "5"], n),
            "feature_set_version": "v2",
            "feed_semantics": "arrival",
            "scored_at": [
                t + dt.timedelta(seconds=int(s)) for t, s in zip(times, offsets % 977, strict=True)
            ],
            "label_is_fraud": pl.Series(label).replace(-1, None),
            "batch_hour": "h",
            # None: rows scored before the column existed (they count as polled).
            "decided_by": rng.choice(["poll", "service", "stream", None], n),
        },
        schema_overrides=SCORED_TRANSACTIONS_SCHEMA,
    ).select(list(SCORED_TRANSACTIONS_SCHEMA))


def reference_rows(scored: pl.DataFrame, time_range: str) -> pl.DataFrame:
    window = data.TIME_RANGES[time_range]
    if window is None:
        return scored
    return scored.filter(pl.col("event_time") >= scored["event_time"].max() - window)


def reference_breakdown(rows: pl.DataFrame, by: pl.Expr, name: str) -> pl.DataFrame:
    return (
        rows.group_by(by.alias(name))
        .agg(
            pl.len().cast(pl.Int64).alias("scored"),
            pl.col("is_flagged").sum().cast(pl.Int64).alias("flagged"),
            pl.col("amt").filter("is_flagged").sum().round(2).alias("amount_flagged"),
        )
        .with_columns(flag_rate=(pl.col("flagged") / pl.col("scored")).round(4))
        .sort(name)
    )


def reference_trend(rows: pl.DataFrame) -> pl.DataFrame:
    span = rows["event_time"].max() - rows["event_time"].min()
    every = "1d" if span > data.DAILY_TREND_AFTER else "1h"
    return (
        rows.sort("event_time")
        .group_by_dynamic("event_time", every=every)
        .agg(
            pl.col("fraud_probability").mean().alias("mean probability"),
            pl.col("is_flagged").cast(pl.Float64).mean().alias("flag rate"),
        )
        .rename({"event_time": "time"})
        .unpivot(index="time", variable_name="metric", value_name="value")
        .with_columns(pl.col("time").cast(pl.Datetime("ns")))
    )


def reference_flagged(rows: pl.DataFrame, category: str, min_p: float, min_amt: float) -> list:
    picked = rows.filter(
        "is_flagged", pl.col("fraud_probability") >= min_p, pl.col("amt") >= min_amt
    )
    if category != data.ALL_CATEGORIES:
        picked = picked.filter(pl.col("category") == category)
    return picked.sort("event_time", "trans_num", descending=True).head(200)["trans_num"].to_list()


@pytest.fixture
def random_warehouse(warehouse: Warehouse) -> tuple[Warehouse, pl.DataFrame]:
    scored = random_scored()
    return stored(warehouse, scored), scored


@pytest.mark.parametrize("time_range", list(data.TIME_RANGES))
def test_sql_figures_equal_polars_on_the_same_rows(random_warehouse, time_range: str) -> None:  # noqa: ANN001
    wh, scored = random_warehouse
    rows = reference_rows(scored, time_range)
    since = data.window_start(wh, time_range)

    s = data.summarize(wh, since)
    flagged = rows.filter("is_flagged")
    labelled = rows.filter(pl.col("label_is_fraud").is_not_null())
    hits = labelled.filter("is_flagged", pl.col("label_is_fraud") == 1).height
    assert (s.scored, s.flagged) == (rows.height, flagged.height)
    assert s.amount_at_risk == pytest.approx(flagged["amt"].sum(), rel=1e-12)
    assert s.labelled == labelled.height
    assert s.labelled_frauds == labelled.filter(pl.col("label_is_fraud") == 1).height
    flagged_labelled = labelled.filter("is_flagged").height
    assert s.precision == (pytest.approx(hits / flagged_labelled) if flagged_labelled else None)
    frauds = s.labelled_frauds
    assert s.recall == (pytest.approx(hits / frauds) if frauds else None)
    assert s.model_version == rows.sort("scored_at", "trans_num")["model_version"][-1]
    assert s.newest_event == str(rows["event_time"].max())

    assert_frame_equal(
        data.by_category(wh, since), reference_breakdown(rows, pl.col("category"), "category")
    )
    by_hour = reference_breakdown(rows, pl.col("event_time").dt.hour().cast(pl.Int32), "hour")
    assert_frame_equal(data.by_hour(data.hourly(wh, since)), by_hour)
    assert_frame_equal(
        data.over_time(data.hourly(wh, since)).sort("metric", "time"),
        reference_trend(rows).sort("metric", "time"),
        check_exact=False,
        rtol=1e-12,
    )
    for category, min_p, min_amt in [("all", 0, 0), ("travel", 0.3, 20.0), ("home", 0.5, 0)]:
        table = data.flagged_table(wh, since, category, min_p, min_amt)
        assert table["trans_num"].to_list() == reference_flagged(rows, category, min_p, min_amt)
    paths = rows.with_columns(pl.col("decided_by").fill_null("poll"))
    by_path = reference_breakdown(paths, pl.col("decided_by"), "decided_by")
    assert_frame_equal(data.by_path(wh, since).drop("decided_via"), by_path)


def random_log(n: int = 4000, seed: int = 11) -> pl.DataFrame:
    """Logged decisions of both logging paths over the 40 minutes before ``NOW_UTC``, server
    times with ties (a tenth of a millisecond) and a few missing."""
    rng = np.random.default_rng(seed)
    ms = rng.integers(0, 40 * 60_000, n)
    server = rng.lognormal(1.0, 0.8, n).round(1)
    return log_frame(
        [
            (f"d{i:05d}", str(path), NOW_UTC - dt.timedelta(milliseconds=int(m)), t, bool(f))
            for i, (path, m, t, f) in enumerate(
                zip(
                    rng.choice(["service", "stream"], n, p=[0.8, 0.2]),
                    ms,
                    [None if i % 97 == 0 else float(v) for i, v in enumerate(server)],
                    rng.random(n) < 0.1,
                    strict=True,
                )
            )
        ]
    )


def reference_logged(log: pl.DataFrame, window: dt.timedelta) -> pl.DataFrame:
    """Nearest-rank p50 and p99 by polars: the value at rank ceil(n * q)."""

    def at_rank(percent: int) -> pl.Expr:
        rank = (pl.len() * percent + 99) // 100
        return pl.col("server_ms").sort().get(rank - 1)

    rows = log.filter(pl.col("logged_at") >= NOW_UTC - window, pl.col("server_ms").is_not_null())
    return (
        rows.group_by("decided_by")
        .agg(
            pl.len().cast(pl.Int64).alias("decisions"),
            pl.col("is_flagged").sum().cast(pl.Int64).alias("reviews"),
            at_rank(50).alias("server_ms_p50"),
            at_rank(99).alias("server_ms_p99"),
        )
        .sort("decided_by")
        .with_columns(review_rate=(pl.col("reviews") / pl.col("decisions")).round(4))
    )


@pytest.mark.parametrize("minutes", [1, 15, 60])
def test_sql_decision_log_figures_equal_polars_on_the_same_rows(
    warehouse: Warehouse, minutes: int
) -> None:
    log = random_log()
    logged_in(warehouse, log)
    window = dt.timedelta(minutes=minutes)
    assert_frame_equal(
        data.logged_figures(warehouse, NOW_UTC, window), reference_logged(log, window)
    )
    assert data.newest_logged(warehouse) == log["logged_at"].max()


# --- the shared snapshot ---------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_concurrent_sessions_share_one_computation_per_interval() -> None:
    clock, calls = Clock(), []
    cache = SnapshotCache(ttl=5, clock=clock)

    def compute() -> int:
        calls.append(1)
        time.sleep(0.2)  # long enough for every other session to arrive meanwhile
        return len(calls)

    with ThreadPoolExecutor(8) as pool:
        first = list(pool.map(lambda _: cache.get("k", compute), range(8)))
    assert first == [1] * 8 and len(calls) == 1  # the others waited for the one computation
    clock.now += 4.9
    assert cache.get("k", compute) == 1 and len(calls) == 1
    clock.now += 0.2  # expired: one session refreshes, the others keep the last snapshot
    with ThreadPoolExecutor(8) as pool:
        second = list(pool.map(lambda _: cache.get("k", compute), range(8)))
    assert len(calls) == 2 and set(second) <= {1, 2} and cache.get("k", compute) == 2
    assert cache.computations == 2


def test_a_failed_refresh_is_not_retried_by_every_caller() -> None:
    clock, calls = Clock(), []
    cache = SnapshotCache(ttl=5, clock=clock)

    def fail() -> int:
        calls.append(1)
        raise RuntimeError("database down")

    for _ in range(3):
        with pytest.raises(RuntimeError, match="database down"):
            cache.get("k", fail)
    assert len(calls) == 1
    clock.now += 5
    assert cache.get("k", lambda: 7) == 7
    clock.now += 5
    with pytest.raises(RuntimeError):  # the caller refreshing it hears of the failure ...
        cache.get("k", fail)
    assert cache.get("k", fail) == 7  # ... the others keep the last snapshot for an interval
    assert cache.get("k", fail) == 7 and len(calls) == 2


def test_the_dashboard_reads_the_database_once_per_interval(tmp_path) -> None:  # noqa: ANN001
    clock = Clock()
    wh = stored(Warehouse(f"sqlite:///{tmp_path / 'wh.db'}"), scored_frame())
    dash = Dashboard(lambda: wh, ttl=5, clock=clock)
    with ThreadPoolExecutor(6) as pool:
        views = list(pool.map(lambda _: dash.aggregates("all"), range(6)))
    # Two snapshots: the aggregates, and the decision log's figures they include.
    assert {v.summary.scored for v in views} == {5} and dash.cache.computations == 2
    assert dash.flagged()["trans_num"].to_list() == ["c", "b", "a"]
    computed = dash.cache.computations

    wh.upsert("scored_transactions", scored_frame().with_columns(trans_num=pl.lit("z")).head(1))
    assert dash.aggregates("all").summary.scored == 5  # the snapshot, until it expires
    clock.now += 5
    dash.aggregates("all")  # this caller refreshes it
    assert dash.aggregates("all").summary.scored == 6
    assert dash.cache.computations == computed + 2

    record_label(wh, "a", True, "ann")
    dash.labels_changed()  # a verdict shows at once in the flagged list
    assert dash.flagged().set_index("trans_num").loc["a", "analyst_label"] == "fraud (ann)"
    dash.close()


# --- rate limiting -----------------------------------------------------------------------------


def test_each_client_gets_a_bucket_of_its_rate_per_minute() -> None:
    clock = Clock()
    limiter = RateLimiter(per_minute=6, clock=clock)
    assert [limiter.acquire("ann") for _ in range(6)] == [0.0] * 6  # a burst of a minute's worth
    assert limiter.acquire("ann") == pytest.approx(10.0)  # one token every 10 s
    assert limiter.acquire("bob") == 0.0  # clients do not share buckets
    clock.now += 9
    assert limiter.acquire("ann") == pytest.approx(1.0)
    clock.now += 1
    assert limiter.acquire("ann") == 0.0 and limiter.acquire("ann") > 0
    clock.now += 3600  # a full bucket holds a minute's worth, no more
    assert sum(limiter.acquire("ann") == 0.0 for _ in range(10)) == 6


def test_a_limit_of_zero_turns_limiting_off_and_the_message_says_when_to_retry() -> None:
    assert all(RateLimiter(0).acquire("ann") == 0.0 for _ in range(1000))
    assert retry_message(9.2) == "rate limited, try again in 10 s"
    assert retry_message(0.01) == "rate limited, try again in 1 s"


def test_idle_clients_are_forgotten_when_there_are_too_many() -> None:
    clock = Clock()
    limiter = RateLimiter(per_minute=60, clock=clock, max_clients=3)
    for ip in ("a", "b", "c"):
        limiter.acquire(ip)
    clock.now += 2  # everyone refilled
    limiter.acquire("d")
    assert len(limiter._buckets) == 1


# --- the Monitoring tab's reads -----------------------------------------------------------------


def test_monitoring_is_empty_and_says_so_before_the_assets_write(warehouse: Warehouse) -> None:
    mon = monitoring.read(warehouse)
    assert mon.empty and mon.status() == monitoring.NO_DATA
    assert mon.lines.height == 0 and mon.drift.height == 0 and mon.alerts.height == 0


def test_monitoring_reads_performance_the_newest_drift_run_and_alerts(
    warehouse: Warehouse,
) -> None:
    monitoring_rows(warehouse)
    mon = monitoring.read(warehouse)
    assert mon.performance.select("day", "model_version").rows() == [
        ("2024-05-02", "3"),
        ("2024-05-02", "4"),
        ("2024-05-01", "3"),
    ]
    lines = {s: v for s, v in zip(mon.lines["series"], mon.lines["value"], strict=True)}
    assert {"v3 precision", "v3 recall", "v3 flag rate", "v4 recall"} <= set(lines)
    assert mon.lines.height == 8  # 3 rows x 3 figures, less one recall not yet known
    assert mon.drift["feature"].to_list() == ["hour", "category", "amt"]  # run-2 only, by PSI
    assert mon.drift["drifted"].to_list() == [True, False, False]
    assert mon.alerts["condition"].to_list() == ["cond3", "cond2", "cond1"]
    assert "hunter22" not in "".join(mon.alerts["message"])
    assert "**1 of 3** drifted" in mon.status() and "model v4" in mon.status()


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


def test_marking_twice_updates_the_verdict_and_never_duplicates(warehouse: Warehouse) -> None:
    record_label(warehouse, "t1", True, "alice", at=T0)
    record_label(warehouse, "t2", True, "alice", at=T0)
    record_label(warehouse, "t1", False, "bob", at=T0 + dt.timedelta(hours=1))
    labels = read_labels(warehouse).sort("trans_num")
    assert labels["trans_num"].to_list() == ["t1", "t2"]
    assert labels.row(0) == ("t1", 0, "bob", T0 + dt.timedelta(hours=1))
    with pytest.raises(ValueError, match="analyst"):
        record_label(warehouse, "t3", True, "  ")


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


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("amount", 2_000_000, "amount: amt 2000000.0 is outside 0..1e+06"),
        ("amount", "1e400", "amount must be a finite number"),
        ("city_population", 1e300, "city population: city_pop"),
        ("city_population", "1e300", "city population: city_pop"),
        ("transaction_time", "0001-01-01 00:00:00", "before 1900"),
        ("transaction_time", "2999-01-01 00:00:00", "in the future"),
        ("date_of_birth", "1850-01-01", "from 1900"),
        ("date_of_birth", "\u0661\u0669\u0668\u0660-01-01", "date of birth must look like"),
        ("card_number", "\u0664" * 16, "card number: cc_num must be 8 to 19 digits (0-9)"),
    ],
)
def test_the_form_keeps_to_the_live_paths_bounds(field, value, message) -> None:  # noqa: ANN001
    with pytest.raises(InvalidTransaction, match=re.escape(message)):
        parse_form(**(FORM | {field: value}), now=NOW)


def test_every_verdict_is_kept_with_who_and_when_and_the_latest_is_the_label(
    warehouse: Warehouse,
) -> None:
    from fraud_assets.lib.feedback import verdict_history

    record_label(warehouse, "t1", True, "alice", at=T0)
    record_label(warehouse, "t1", False, "bob", at=T0 + dt.timedelta(hours=1))
    record_label(warehouse, "t1", True, "carol", at=T0 + dt.timedelta(hours=2))
    history = verdict_history(warehouse, "t1")
    assert history.select("is_fraud", "analyst").rows() == [(1, "alice"), (0, "bob"), (1, "carol")]
    assert history["labelled_at"].to_list() == [T0 + dt.timedelta(hours=h) for h in range(3)]
    [label] = read_labels(warehouse, ["t1"]).rows(named=True)
    assert (label["is_fraud"], label["analyst"]) == (1, "carol")
