"""The decision service's fast path (``score_vectors``: numpy, no polars query) against the one
serving path (``score_rows``): identical features, probabilities and decisions on more than
10,000 generated rows, and identical answers and log rows batch by batch, under both semantics
(event-time feeds have no fast path: the decider takes ``score_rows`` for them)."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import json
import math
import time
from dataclasses import dataclass

import numpy as np
import polars as pl
import pytest
from hypothesis import given
from hypothesis import strategies as st

from fraud_assets.lib.deciding import Decider, Request, RowChecker
from fraud_assets.lib.decision_log import DECISION_LOG_SCHEMA, LOG_TABLE
from fraud_assets.lib.evaluation import serving_model
from fraud_assets.lib.features import for_semantics
from fraud_assets.lib.features.vectors import Vec
from fraud_assets.lib.generator import GeneratorConfig, generate_transactions
from fraud_assets.lib.model import TrainParams, train
from fraud_assets.lib.payloads import Limits
from fraud_assets.lib.schema import training_csv_to_canonical
from fraud_assets.lib.serving import (
    FrameState,
    ServingModel,
    fast_path_serves,
    score_rows,
    score_vectors,
)
from fraud_assets.lib.warehouse import Warehouse
from fraud_assets_tests.helpers.service import body_of

SPLIT = dt.datetime(2020, 4, 5)
GENERATED = GeneratorConfig(
    n_cards=250, end=dt.date(2020, 5, 1), compromises_per_card_year=2.0, seed=3
)
#: Times the fast path cannot reproduce, and need not: when each decision was made.
WHEN = ("server_ms", "logged_at", "scored_at")


@pytest.fixture(scope="module")
def data() -> tuple[pl.DataFrame, pl.DataFrame]:
    """History before SPLIT, and more than 10,000 rows after it, some on cards never seen."""
    rows = training_csv_to_canonical(generate_transactions(GENERATED))
    history, live = (
        rows.filter(pl.col("event_time") < SPLIT),
        rows.filter(pl.col("event_time") >= SPLIT),
    )
    unseen = pl.col("cc_num").hash(seed=1) % 7 == 0
    assert live.height >= 10_000 and live.filter(unseen).height > 0
    return history.filter(~unseen), live.sort("event_time", "trans_num")


@pytest.fixture(scope="module")
def models(data) -> dict[str, ServingModel]:  # noqa: ANN001
    history, _ = data
    small = TrainParams(n_estimators=10, n_jobs=2)
    return {
        s: serving_model(train(history, for_semantics(s), small)) for s in ("arrival", "payload")
    }


def matrices_equal(a: np.ndarray, b: np.ndarray) -> bool:
    return bool(np.all((a == b) | (np.isnan(a) & np.isnan(b))))


def test_the_vectors_compute_the_polars_features_exactly(data) -> None:  # noqa: ANN001
    """Every profile feature, bit for bit: cards and categories never seen, and the nulls and
    unknown categories a row may carry, included."""
    history, live = data
    fs = for_semantics("arrival")
    n = live.height
    odd = np.arange(n) % 97 == 0
    live = live.with_columns(
        gender=pl.when(pl.Series(odd)).then(None).otherwise("gender"),
        dob=pl.when(pl.Series(np.roll(odd, 1))).then(None).otherwise("dob"),
        city_pop=pl.when(pl.Series(np.roll(odd, 2))).then(None).otherwise("city_pop"),
        category=pl.when(pl.Series(np.roll(odd, 3))).then(pl.lit("other")).otherwise("category"),
    )
    profiles = fs.build_state(history)
    expected = fs.matrix(fs.serving_features(live, profiles))
    state = FrameState(profiles).vector_states(fs, live["cc_num"].unique().to_list())
    columns = {c: live[c].to_list() for c in live.columns}
    assert matrices_equal(fs.vector_matrix(fs.serving_vectors(columns, state)), expected)
    for start in range(0, 500, 7):  # small batches too, as the service sees them
        part = live.slice(start, 7)
        got = fs.serving_vectors({c: part[c].to_list() for c in part.columns}, state)
        assert matrices_equal(fs.vector_matrix(got), expected[start : start + 7])


def test_score_vectors_gives_score_rows_probabilities_and_decisions(data, models) -> None:  # noqa: ANN001
    history, live = data
    model = models["arrival"]
    fs = model.feature_set
    profiles = fs.build_state(history)
    expected = score_rows(live, FrameState(profiles), model, semantics="arrival").scored
    state = FrameState(profiles).vector_states(fs, live["cc_num"].unique().to_list())
    got = score_vectors(
        {c: live[c].to_list() for c in live.columns}, state, model, semantics="arrival"
    )
    assert got.proba.tolist() == expected["fraud_probability"].to_list()
    assert got.thresholds.tolist() == expected["threshold"].to_list()
    assert got.flagged.tolist() == expected["is_flagged"].to_list()
    assert got.expected_loss.tolist() == expected["expected_loss"].to_list()
    assert 0 < int(got.flagged.sum()) < live.height  # both decisions occur


@dataclass(frozen=True)
class Fixed:
    """A champion that never moves: what ``Decider`` asks of ``LiveChampion``."""

    model: ServingModel

    def current(self):  # noqa: ANN201
        from fraud_assets.lib.champion import Loaded

        return Loaded(self.model, None, 0.0)  # type: ignore[arg-type]


def decide_everything(
    tmp_path,
    name: str,
    model: ServingModel,
    semantics: str,
    live: pl.DataFrame,
    state,
    vectors: bool,
) -> tuple[list, pl.DataFrame]:  # noqa: ANN001
    """``live`` decided in batches of 1 to 60 by a decider with or without its fast path;
    the answers (without their times) and the log it wrote. The fast one decides as the
    service and the stream workers do (``decide_async``), the other as ``decide``."""
    wh = Warehouse(f"sqlite:///{tmp_path / name}.db")
    decider = Decider(Fixed(model), state, wh, semantics, vectors=vectors)  # type: ignore[arg-type]
    checker = RowChecker(Limits(), "event_time" if semantics == "payload" else None)
    arrived = dt.datetime(2026, 12, 4, 10, 30, 15, 123456)
    answers, rows = [], list(live.iter_rows(named=True))
    sizes = iter(np.resize([1, 60, 7, 2, 33], len(rows)))
    start = 0
    while start < len(rows):
        chunk = rows[start : start + int(next(sizes))]
        start += len(chunk)
        requests = [
            Request(
                checker.check(body_of(r, semantics), arrived), "c", time.perf_counter(), arrived
            )
            for r in chunk
        ]
        decided = (
            asyncio.run(decider.decide_async(requests)) if vectors else decider.decide(requests)
        )
        answers += [dataclasses.replace(d, server_ms=0.0) for d in decided]
    return answers, wh.read(LOG_TABLE, DECISION_LOG_SCHEMA).drop(WHEN).sort("trans_num")


@pytest.mark.parametrize("semantics", ["arrival", "payload"])
def test_the_fast_path_decides_and_logs_exactly_as_score_rows(
    semantics: str,
    data,
    models,
    tmp_path,  # noqa: ANN001
) -> None:
    """The same answers and the same log rows (served features included) from a decider
    that takes the fast path wherever it can and from one that never does."""
    history, live = data
    model = models[semantics]
    assert fast_path_serves(model) == (semantics == "arrival")
    state = FrameState(model.feature_set.build_state(history))
    # The log rows, batch by batch: fewer rows than above (where 10,000 and more are compared
    # feature by feature), and fewer still without a fast path (the same code twice).
    live = live.head(2_000 if semantics == "arrival" else 500)
    fast, fast_log = decide_everything(tmp_path, "fast", model, semantics, live, state, True)
    slow, slow_log = decide_everything(tmp_path, "slow", model, semantics, live, state, False)
    assert fast == slow
    assert len(fast) == live.height and fast_log.height == live.height
    served = [c for c in fast_log.columns if c != "features_json"]
    assert fast_log.select(served).equals(slow_log.select(served))
    for a, b in zip(fast_log["features_json"], slow_log["features_json"], strict=True):
        assert json.loads(a) == json.loads(b)
    assert {d.decision for d in fast} == {"review", "approve"}


def test_a_vec_keeps_polars_null_semantics() -> None:
    """Null propagates and only fill_null replaces it; NaN is a value."""
    a, b = Vec.of([1.0, None, float("nan")]), Vec.of([2.0, 3.0, None])
    s = pl.DataFrame({"a": [1.0, None, float("nan")], "b": [2.0, 3.0, None]})
    cases = {
        "sum": (a + b, pl.col("a") + pl.col("b")),
        "ratio": (a / b.clip(lower_bound=2.5), pl.col("a") / pl.col("b").clip(lower_bound=2.5)),
        "filled": ((a * 2).fill_null(-1.0), (pl.col("a") * 2).fill_null(-1.0)),
        "log": (a.log1p().sqrt(), pl.col("a").log1p().sqrt()),
        "flag": ((a == 1.0).cast(pl.Int8), (pl.col("a") == 1.0).cast(pl.Int8)),
    }
    for name, (vec, expr) in cases.items():
        want = s.select(expr.alias("x"))["x"].to_list()
        got = vec.to_list()
        assert [None if v is None else (str(v) if v != v else v) for v in got] == [
            None if v is None else (str(v) if v != v else v) for v in want
        ], name


#: Values at IEEE's edges, which the formulas never see from a valid row but must still treat
#: as polars does, and two whose square the C library's ``pow`` rounds otherwise than x * x.
EDGES = [0.0, -0.0, 1.0, -1.0, 0.1, 2.5, -2.0, 1e308, -1e308, 5e-324, math.inf, -math.inf]
EDGES += [3.544967557839694, 0.773751220987744]
VALUES = st.one_of(
    st.none(),
    st.just(math.nan),
    st.sampled_from(EDGES),
    st.floats(allow_nan=False, allow_infinity=False),
)
#: Every operation the formulas use, on a ``Vec`` or a polars column alike.
OPERATIONS = {
    "add": lambda a, b: a + b,
    "sub": lambda a, b: a - b,
    "mul": lambda a, b: a * b,
    "div": lambda a, b: a / b,
    "rdiv": lambda a, b: 2.0 / a,
    "rsub": lambda a, b: 1.0 - a,
    "square": lambda a, b: a.pow(2),
    "sqrt": lambda a, b: a.sqrt(),
    "log1p": lambda a, b: a.log1p(),
    "clip": lambda a, b: a.clip(lower_bound=1.0),
    "clip_zero": lambda a, b: a.clip(0.0),
    "fill": lambda a, b: (a / b).fill_null(-1.0),
    "is_zero": lambda a, b: (a == 0).cast(pl.Int8),
    "std": lambda a, b: (a / b - (b / a).pow(2)).clip(0.0).sqrt(),
}


@given(columns=st.lists(st.tuples(VALUES, VALUES), min_size=1, max_size=6))
def test_a_vec_computes_each_operation_as_polars_does(columns: list[tuple]) -> None:
    """Bit for bit (the sign of a zero, NaN and the infinities included), on any values."""
    left, right = [a for a, _ in columns], [b for _, b in columns]
    frame = pl.DataFrame({"a": left, "b": right}, schema={"a": pl.Float64, "b": pl.Float64})
    for name, op in OPERATIONS.items():
        want = frame.select(op(pl.col("a"), pl.col("b")).alias("x"))["x"].to_list()
        got = op(Vec.of(left), Vec.of(right)).to_list()
        assert list(map(repr, got)) == list(map(repr, want)), (name, left, right)
