"""Manual scoring: validate a form, score it with the pipeline's own code, explain the score.

The score is the champion pipeline applied to ``features_with_history`` of a one-row canonical
frame plus the card's history (training data and live transactions), exactly as the
``scored_transactions`` asset does. The explanation replaces one feature at a time with its
reference value (the training median the model's imputer stored) and reports how much the
probability moves.
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
from dataclasses import dataclass, field

import numpy as np
import polars as pl

from fraud_assets.lib import registry
from fraud_assets.lib.features import (
    FEATURE_LABELS,
    FEATURES,
    INPUT_COLUMNS,
    feature_matrix,
    features_with_history,
)
from fraud_assets.lib.schema import CATEGORIES, LIVE_TRANSACTIONS_SCHEMA, TRANSACTION_SCHEMA
from fraud_assets.lib.storage import ObjectStore
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
    except (TypeError, ValueError):
        errors.append(f"{name} must be a number, not {value!r}")
        return None
    if not math.isfinite(number):
        errors.append(f"{name} must be a finite number")
        return None
    return number


def _in_range(value: float | None, name: str, low: float, high: float, errors: list[str]) -> None:
    if value is not None and not low <= value <= high:
        errors.append(f"{name} must be between {low:g} and {high:g}, not {value:g}")


def parse_time(value: str | None, now: dt.datetime) -> dt.datetime:
    """ISO date-time (``YYYY-MM-DD HH:MM[:SS]``, UTC unless an offset is given) to naive UTC."""
    if value is None or not str(value).strip():
        return now
    parsed = dt.datetime.fromisoformat(str(value).strip().replace("Z", "+00:00"))
    if parsed.tzinfo is not None:
        parsed = parsed.astimezone(dt.UTC).replace(tzinfo=None)
    return parsed


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
) -> ManualTransaction:
    """Validate the form; raise InvalidTransaction listing every problem found."""
    now = now or dt.datetime.now(dt.UTC).replace(tzinfo=None, microsecond=0)
    errors: list[str] = []
    amt = _number(amount, "amount", errors)
    if amt is not None and amt < 0:
        errors.append(f"amount must not be negative, not {amt:g}")
    cat = str(category or "").strip()
    if cat not in CATEGORIES:
        errors.append(f"unknown category {cat!r} (choose from {', '.join(CATEGORIES)})")
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
    when: dt.datetime | None
    try:
        when = parse_time(None if transaction_time is None else str(transaction_time), now)
    except ValueError:
        when = None
        errors.append(
            f"transaction time must look like 2024-05-31 14:05:00 (UTC), not {transaction_time!r}"
        )
    dob: dt.date | None = None
    try:
        dob = dt.date.fromisoformat(str(date_of_birth or "").strip())
    except ValueError:
        errors.append(f"date of birth must look like 1980-12-31, not {date_of_birth!r}")
    if dob is not None:
        if dob > now.date() or (when is not None and dob > when.date()):
            errors.append(f"date of birth {dob} is in the future")
        elif (now.date() - dob).days > 120 * 366:
            errors.append(f"date of birth {dob} is more than 120 years ago")
    card = re.sub(r"[\s-]", "", str(card_number or ""))
    if card and not re.fullmatch(r"\d{8,19}", card):
        errors.append("card number must be 8 to 19 digits (or left empty)")
    sex = str(gender or "").strip().upper()
    if sex not in GENDERS:
        errors.append(f"gender must be F, M or empty, not {gender!r}")
    pop: float | None = None
    if city_population not in (None, ""):
        pop = _number(city_population, "city population", errors)
        if pop is not None and pop < 0:
            errors.append("city population must not be negative")
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


def reference_values(pipeline) -> np.ndarray:  # noqa: ANN001
    """Per-feature reference: the training medians the pipeline's imputer stored."""
    return np.asarray(pipeline.named_steps["impute"].statistics_, dtype=np.float64)


def explain(pipeline, x: np.ndarray, reference: np.ndarray) -> tuple[float, np.ndarray]:  # noqa: ANN001
    """``(probability, contributions)`` for one feature row ``x`` (shape ``(1, n)``).

    Contribution ``i`` is the probability minus the probability with feature ``i`` set to its
    reference value: positive pushed the score up. One batched predict of ``n + 1`` rows.
    """
    n = x.shape[1]
    rows = np.repeat(x, n + 1, axis=0)
    for i in range(n):
        if not math.isnan(x[0, i]):
            rows[i + 1, i] = reference[i]
    proba = pipeline.predict_proba(rows)[:, 1]
    return float(proba[0]), proba[0] - proba[1:]


@dataclass
class ScoreResult:
    probability: float
    threshold: float
    is_flagged: bool
    model_name: str
    model_version: str
    history_rows: int
    explanation: pl.DataFrame
    seconds: float = 0.0

    def decision(self) -> str:
        verdict = "FLAG for review" if self.is_flagged else "pass"
        history = (
            f"{self.history_rows} earlier transactions of this card"
            if self.history_rows
            else "no card history"
        )
        return (
            f"{verdict}: probability {self.probability:.4f} vs threshold {self.threshold:.4f} "
            f"({self.model_name} v{self.model_version}; {history})"
        )


@dataclass
class _Loaded:
    pipeline: object
    info: registry.RegisteredModel
    reference: np.ndarray
    checked_at: float
    training_history: dict[str, pl.DataFrame] = field(default_factory=dict)


class Scorer:
    """Scores manual transactions with the registry's champion, refreshed every ``ttl`` s."""

    def __init__(
        self,
        tracking_uri: str,
        model_name: str,
        warehouse: Callable[[], Warehouse],
        store: Callable[[], ObjectStore] | None,
        training_key: str,
        ttl: float = 30.0,
    ) -> None:
        self.tracking_uri, self.model_name = tracking_uri, model_name
        self._warehouse, self._store, self._key = warehouse, store, training_key
        self.ttl = ttl
        self._lock = threading.Lock()
        self._loaded: _Loaded | None = None

    def model(self) -> _Loaded:
        """The champion, with its reference values and training history (cached per version).

        Raises registry.NoChampionError when there is none yet."""
        with self._lock:
            cur = self._loaded
            if cur is not None and time.monotonic() - cur.checked_at < self.ttl:
                return cur
            info = registry.get_champion(self.tracking_uri, self.model_name)
            if cur is not None and info is not None and info.version == cur.info.version:
                cur.checked_at = time.monotonic()
                return cur
            pipeline, info = registry.load_champion(self.tracking_uri, self.model_name)
            clf = pipeline.named_steps["model"]
            if hasattr(clf, "n_jobs"):
                clf.n_jobs = 1  # one row: thread start-up would cost more than it saves
            self._loaded = _Loaded(
                pipeline, info, reference_values(pipeline), time.monotonic(), self._training()
            )
            return self._loaded

    def _training(self) -> dict[str, pl.DataFrame]:
        """Training transactions by card, from the object store (empty if unavailable)."""
        if self._store is None:
            return {}
        try:
            store = self._store()
            if not store.exists(self._key):
                return {}
            frame = store.get_parquet(self._key, columns=list(INPUT_COLUMNS))
        except Exception as exc:  # noqa: BLE001 - history is optional; warehouse still serves
            log.warning("training history unavailable (%s); using live history only", exc)
            return {}
        return frame.partition_by("cc_num", as_dict=True, include_key=True)

    def history(self, loaded: _Loaded, card: str | None) -> pl.DataFrame:
        """The card's earlier transactions: training data plus live rows in the warehouse."""
        empty = pl.DataFrame(schema={c: TRANSACTION_SCHEMA[c] for c in INPUT_COLUMNS})
        if not card:
            return empty
        live = self._warehouse().read(
            "live_transactions",
            LIVE_TRANSACTIONS_SCHEMA,
            columns=list(INPUT_COLUMNS),
            where={"cc_num": [card]},
        )
        train = loaded.training_history.get((card,), empty)
        return pl.concat([train, live], how="vertical_relaxed")

    def score(self, tx: ManualTransaction) -> ScoreResult:
        started = time.perf_counter()
        loaded = self.model()
        batch = tx.to_frame()
        history = self.history(loaded, tx.card_number)
        feats = features_with_history(batch, history)
        x = feature_matrix(feats)
        proba, contrib = explain(loaded.pipeline, x, loaded.reference)
        explanation = (
            pl.DataFrame(
                {
                    "feature": list(FEATURES),
                    "meaning": [FEATURE_LABELS[f] for f in FEATURES],
                    "value": x[0],
                    "reference": loaded.reference,
                    "contribution": contrib,
                }
            )
            .with_columns(pl.col("value", "reference", "contribution").round(4))
            .sort(pl.col("contribution").abs(), descending=True)
        )
        info = loaded.info
        earlier = history.filter(pl.col("event_time") < tx.transaction_time).height
        return ScoreResult(
            probability=proba,
            threshold=info.threshold,
            is_flagged=proba >= info.threshold,
            model_name=info.name,
            model_version=info.version,
            history_rows=earlier,
            explanation=explanation,
            seconds=time.perf_counter() - started,
        )
