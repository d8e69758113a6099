"""Manual scoring: validate a form, score it through the one serving path, explain the score.

A one-row canonical frame goes through ``lib/serving.score_rows`` with the card state read by
card from the warehouse, exactly as the ``scored_transactions`` asset scores live rows. The
explanation is TreeSHAP summed by feature family (``lib/explain.py``): it never shows a
feature's value, so no card's history can be read back through this form.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import re
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from fraud_assets.lib import registry
from fraud_assets.lib.card_state import WarehouseState
from fraud_assets.lib.explain import Explainer, Explanation
from fraud_assets.lib.payloads import Limits, PayloadError, check_dob, event_time, row_checks
from fraud_assets.lib.schema import CATEGORIES, TRANSACTION_SCHEMA
from fraud_assets.lib.serving import ScoredBatch, ServingModel, score_rows
from fraud_assets.lib.warehouse import Warehouse

log = logging.getLogger(__name__)

#: Card id used when the form has no card number: such a row has no history.
NO_CARD = "no-card"
GENDERS = {"": None, "F": "F", "M": "M"}


class InvalidTransaction(ValueError):
    """The form does not describe a valid transaction; the message says what to fix."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


@dataclass(frozen=True)
class ManualTransaction:
    """One validated transaction from the form."""

    amount: float
    category: str
    merchant_lat: float
    merchant_long: float
    cardholder_lat: float
    cardholder_long: float
    date_of_birth: dt.date
    transaction_time: dt.datetime  # naive UTC
    card_number: str | None = None
    gender: str | None = None
    city_population: int | None = None

    def to_frame(self) -> pl.DataFrame:
        """The one-row canonical frame the pipeline's feature code expects."""
        row = {c: None for c in TRANSACTION_SCHEMA}
        row |= {
            "trans_num": f"manual-{uuid.uuid4().hex}",
            "event_time": self.transaction_time,
            "cc_num": self.card_number or NO_CARD,
            "merchant": "manual entry",
            "category": self.category,
            "amt": self.amount,
            "gender": self.gender,
            "city_pop": self.city_population,
            "lat": self.cardholder_lat,
            "long": self.cardholder_long,
            "dob": self.date_of_birth.isoformat(),
            "merch_lat": self.merchant_lat,
            "merch_long": self.merchant_long,
        }
        return pl.DataFrame([row], schema=TRANSACTION_SCHEMA)


def _number(value: object, name: str, errors: list[str]) -> float | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        errors.append(f"{name} is required")
        return None
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError, OverflowError):
        errors.append(f"{name} must be a number, not {str(value)[:40]!r}")
        return None
    if not math.isfinite(number):
        errors.append(f"{name} must be a finite number")
        return None
    return number


def _in_range(value: float | None, name: str, low: float, high: float, errors: list[str]) -> None:
    if value is not None and not low <= value <= high:
        errors.append(f"{name} must be between {low:g} and {high:g}, not {value:g}")


def _live_check(
    name: str, check: Callable[[object], object], value: object, errors: list[str]
) -> object:
    """``value`` through the live path's own check for its column (``lib/payloads.py``), so
    the form accepts exactly what a live row may hold; the problem is named by form field."""
    if value is None:
        return None
    try:
        return check(value)
    except PayloadError as exc:
        errors.append(f"{name}: {exc}")
        return None


def parse_time(value: str | None, now: dt.datetime) -> dt.datetime:
    """ISO date-time (``YYYY-MM-DD HH:MM[:SS]``, UTC unless an offset is given) to naive UTC;
    ValueError for anything else, and for a time before 1900 (the live path's bound)."""
    if value is None or not str(value).strip():
        return now
    try:
        return event_time(str(value).strip())
    except PayloadError as exc:
        raise ValueError(str(exc)) from None


def _form_time(
    transaction_time: object, now: dt.datetime, limits: Limits, errors: list[str]
) -> dt.datetime | None:
    try:
        when = parse_time(None if transaction_time is None else str(transaction_time), now)
    except ValueError as exc:
        errors.append(
            "transaction time must look like 2024-05-31 14:05:00 (UTC), "
            f"not {str(transaction_time)[:40]!r} ({exc})"
        )
        return None
    if when > now + limits.max_skew:
        errors.append(f"transaction time {when} is in the future")
        return None
    return when


def _form_dob(
    date_of_birth: object, when: dt.datetime | None, now: dt.datetime, errors: list[str]
) -> dt.date | None:
    text = str(date_of_birth or "").strip()
    try:
        dob = dt.date.fromisoformat(check_dob(text))
    except (PayloadError, ValueError):
        errors.append(f"date of birth must look like 1980-12-31 (from 1900), not {text[:40]!r}")
        return None
    if dob > now.date() or (when is not None and dob > when.date()):
        errors.append(f"date of birth {dob} is in the future")
        return None
    return dob


def parse_form(
    amount: object,
    category: object,
    merchant_lat: object,
    merchant_long: object,
    cardholder_lat: object,
    cardholder_long: object,
    date_of_birth: object,
    transaction_time: object = None,
    card_number: object = None,
    gender: object = None,
    city_population: object = None,
    now: dt.datetime | None = None,
    limits: Limits | None = None,
) -> ManualTransaction:
    """Validate the form with the live path's own checks and bounds (``limits``: an amount
    above the live cap, a population of 1e300, a time in year 1 are refused); raise
    InvalidTransaction listing every problem found."""
    now = now or dt.datetime.now(dt.UTC).replace(tzinfo=None, microsecond=0)
    limits = limits or Limits()
    checks = row_checks(limits)
    errors: list[str] = []
    amt = _number(amount, "amount", errors)
    if amt is not None and amt < 0:
        errors.append(f"amount must not be negative, not {amt:g}")
    elif amt is not None:
        amt = _live_check("amount", checks["amt"], amt, errors)
    cat = str(category or "").strip()
    if cat not in CATEGORIES:
        errors.append(f"unknown category {cat[:40]!r} (choose from {', '.join(CATEGORIES)})")
    coords = {
        "merchant latitude": (merchant_lat, 90),
        "merchant longitude": (merchant_long, 180),
        "cardholder latitude": (cardholder_lat, 90),
        "cardholder longitude": (cardholder_long, 180),
    }
    parsed: dict[str, float | None] = {}
    for name, (value, bound) in coords.items():
        parsed[name] = _number(value, name, errors)
        _in_range(parsed[name], name, -bound, bound, errors)
    when = _form_time(transaction_time, now, limits, errors)
    dob = _form_dob(date_of_birth, when, now, errors)
    card = re.sub(r"[\s-]", "", str(card_number or ""))
    if card:
        card = _live_check("card number", checks["cc_num"], card, errors) or ""
    sex = str(gender or "").strip().upper()
    if sex not in GENDERS:
        errors.append(f"gender must be F, M or empty, not {str(gender)[:10]!r}")
    pop = None
    if city_population not in (None, ""):
        pop = _number(city_population, "city population", errors)
        if pop is not None and pop < 0:
            errors.append("city population must not be negative")
        elif pop is not None:
            pop = _live_check("city population", checks["city_pop"], pop, errors)
    if errors:
        raise InvalidTransaction(errors)
    return ManualTransaction(
        amount=float(amt),  # type: ignore[arg-type]
        category=cat,
        merchant_lat=parsed["merchant latitude"],  # type: ignore[arg-type]
        merchant_long=parsed["merchant longitude"],  # type: ignore[arg-type]
        cardholder_lat=parsed["cardholder latitude"],  # type: ignore[arg-type]
        cardholder_long=parsed["cardholder longitude"],  # type: ignore[arg-type]
        date_of_birth=dob,  # type: ignore[arg-type]
        transaction_time=when,  # type: ignore[arg-type]
        card_number=card or None,
        gender=GENDERS[sex],
        city_population=int(pop) if pop is not None else None,
    )


@dataclass
class ScoreResult:
    probability: float
    threshold: float
    expected_loss: float
    review_cost: float
    is_flagged: bool
    model_name: str
    model_version: str
    feed_semantics: str
    seconds: float = 0.0

    def decision(self) -> str:
        verdict = "FLAG for review" if self.is_flagged else "pass"
        return (
            f"{verdict}: fraud probability {self.probability:.4f}, expected fraud loss "
            f"${self.expected_loss:,.2f} against a review worth ${self.review_cost:,.2f} "
            f"(flag at probability {min(self.threshold, 1.0):.4f} or more for this amount; "
            f"{self.model_name} v{self.model_version}, {self.feed_semantics} feed)"
        )


@dataclass
class _Loaded:
    model: ServingModel
    info: registry.RegisteredModel
    explainer: Explainer
    checked_at: float


class Scorer:
    """Scores manual transactions with the registry's champion, refreshed every ``ttl`` s."""

    def __init__(
        self,
        tracking_uri: str,
        model_name: str,
        warehouse: Callable[[], Warehouse],
        semantics: str,
        cache_dir: Path,
        ttl: float = 30.0,
        limits: Limits | None = None,
    ) -> None:
        self.tracking_uri, self.model_name = tracking_uri, model_name
        self.limits = limits or Limits()
        self._warehouse = warehouse
        self.semantics = semantics
        self.cache_dir = cache_dir
        self.ttl = ttl
        self._lock = threading.Lock()
        self._loaded: _Loaded | None = None

    def model(self) -> _Loaded:
        """The champion and its explainer, cached per version. Every ``ttl`` s the registry is
        asked again, in the background: a request never waits on the registry once a model
        is loaded. Raises registry.NoChampionError when there is none yet."""
        cur = self._loaded
        if cur is None:
            with self._lock:
                return self._loaded or self._refresh(None)
        if time.monotonic() - cur.checked_at >= self.ttl and self._lock.acquire(blocking=False):
            cur.checked_at = time.monotonic()  # one refresh per interval

            def refresh() -> None:
                try:
                    self._refresh(cur)
                except Exception:  # noqa: BLE001 - keep serving the loaded model; log why
                    log.exception("could not refresh the champion; serving v%s", cur.info.version)
                finally:
                    self._lock.release()

            threading.Thread(target=refresh, daemon=True).start()
        return cur

    def _refresh(self, cur: _Loaded | None) -> _Loaded:
        info = registry.get_champion(self.tracking_uri, self.model_name)
        if cur is not None and info is not None and info.version == cur.info.version:
            return cur
        model, info = registry.load_champion(self.tracking_uri, self.model_name, self.cache_dir)
        explainer = Explainer(model.pipeline, model.feature_set)
        self._loaded = _Loaded(model, info, explainer, time.monotonic())
        return self._loaded

    def _serve(self, tx: ManualTransaction) -> tuple[_Loaded, ScoredBatch]:
        loaded = self.model()
        state = WarehouseState(self._warehouse())
        return loaded, score_rows(tx.to_frame(), state, loaded.model, semantics=self.semantics)

    def score(self, tx: ManualTransaction) -> ScoreResult:
        """The score and decision, exactly as the live path would serve this transaction."""
        started = time.perf_counter()
        loaded, batch = self._serve(tx)
        row = batch.scored.row(0, named=True)
        return ScoreResult(
            probability=row["fraud_probability"],
            threshold=row["threshold"],
            expected_loss=row["expected_loss"],
            review_cost=loaded.model.decision.min_expected_loss,
            is_flagged=row["is_flagged"],
            model_name=loaded.info.name,
            model_version=loaded.info.version,
            feed_semantics=self.semantics,
            seconds=time.perf_counter() - started,
        )

    def explain(self, tx: ManualTransaction) -> Explanation:
        """What moved the score: TreeSHAP by feature family (no feature values)."""
        loaded, batch = self._serve(tx)
        why = loaded.explainer.explain(batch.features)
        families = why.families.with_columns(pl.col("contribution").round(5))
        return Explanation(why.baseline, why.raw_score, families)
