"""The request and response models: the OpenAPI document is generated from these.

A transaction carries the transactions API row's fields (without ``current_time``: the
service's own clock is the arrival). Each field is checked by the live path's own check for
its column (``lib/payloads.py``), so the service accepts exactly what a polled row may hold; a
bad field gets a 422 that names it, and nothing is decided or recorded.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from fraud_assets.lib.payloads import Limits, PayloadError, row_checks

#: The checks of every column a request may carry (bounds set by the app's limits at start).
_CHECKS = row_checks(Limits())


def _checked(column: str, value: Any) -> Any:
    try:
        return _CHECKS[column](value)
    except PayloadError as exc:
        raise ValueError(str(exc)) from None


class Transaction(BaseModel):
    """One card transaction, as the transactions API sends a row."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "example": {
                "trans_num": "3cb54a489fb351f73a7db98f6c7bb1ad",
                "cc_num": "4497913965512794052",
                "merchant": "fraud_Berge, Kautzer and Harris",
                "category": "personal_care",
                "amt": 60.16,
                "first": "Scott",
                "last": "Edwards",
                "gender": "M",
                "street": "838 Amy Street Suite 107",
                "city": "Pembroke",
                "state": "NC",
                "zip": 28372,
                "lat": 34.6902,
                "long": -79.1834,
                "city_pop": 14783,
                "job": "Hospital doctor",
                "dob": "1955-11-07",
                "merch_lat": 34.38451,
                "merch_long": -78.621062,
            }
        },
    )

    trans_num: str = Field(description="The transaction's id: 1 to 64 letters, digits, - or _.")
    cc_num: int | str = Field(description="Card number, 8 to 19 digits (a string keeps all).")
    merchant: str
    category: str = Field(description="One of the 14 categories of the public dataset.")
    amt: float = Field(description="Amount in dollars, 0 up to the configured cap.")
    first: str
    last: str
    gender: Literal["F", "M"]
    street: str
    city: str
    state: str
    zip: int
    lat: float = Field(ge=-90, le=90)
    long: float = Field(ge=-180, le=180)
    city_pop: int = Field(ge=0)
    job: str
    dob: str = Field(description="Date of birth, YYYY-MM-DD, from 1900.")
    merch_lat: float = Field(ge=-90, le=90)
    merch_long: float = Field(ge=-180, le=180)
    is_fraud: Literal[0, 1] | None = Field(
        None, description="A label, if known: kept for monitoring only, never a model input."
    )
    event_time: str | int | None = Field(
        None,
        description="When the transaction happened (ISO 8601 UTC or epoch ms): required "
        "when the service serves an event-time (payload) feed, ignored otherwise.",
    )

    @field_validator(
        "trans_num",
        "cc_num",
        "merchant",
        "category",
        "amt",
        "first",
        "last",
        "gender",
        "street",
        "city",
        "state",
        "zip",
        "lat",
        "long",
        "city_pop",
        "job",
        "dob",
        "merch_lat",
        "merch_long",
        mode="before",
    )
    @classmethod
    def _as_a_live_row(cls, value: Any, info: Any) -> Any:  # noqa: ANN401
        return _checked(info.field_name, value)

    @field_validator("is_fraud", mode="before")
    @classmethod
    def _label(cls, value: Any) -> Any:  # noqa: ANN401
        return None if value is None else _checked("is_fraud", value)


class BatchRequest(BaseModel):
    """Several transactions decided together (at most the configured batch size)."""

    model_config = ConfigDict(extra="forbid")
    transactions: Annotated[list[Transaction], Field(min_length=1)]


class FamilyContribution(BaseModel):
    family: str
    contribution: float = Field(description="TreeSHAP on the raw score, summed by family.")


class DecisionOut(BaseModel):
    """The decision on one transaction; never a value of the card's history or profile."""

    trans_num: str
    decision: Literal["review", "approve"]
    fraud_probability: float = Field(description="Calibrated probability of fraud.")
    threshold: float = Field(description="The probability from which this amount is reviewed.")
    expected_loss: float = Field(description="fraud_probability x amount, in dollars.")
    model_name: str
    model_version: str
    feature_set_version: str
    feed_semantics: str
    server_ms: float = Field(description="Time in the service, from arrival to the decision.")
    repeated: bool = Field(
        False, description="True when the transaction was decided before: the first decision."
    )
    explanation: list[FamilyContribution] | None = None


class BatchOut(BaseModel):
    decisions: list[DecisionOut]


class Problem(BaseModel):
    """Why a request was not answered with a decision."""

    detail: str


class Noop(BaseModel):
    ok: Literal[True]


class Health(BaseModel):
    status: Literal["ok"]


class Readiness(BaseModel):
    ready: bool
    reason: str
    model_version: str | None
    refused_version: str | None
    champion_checked_seconds_ago: float | None
    champion_load_seconds: float | None = Field(
        description="How long the latest change of champion took, from reading the registry "
        "to serving the new version (or refusing it): a promotion is served within the check "
        "interval plus this."
    )
    card_state: str
