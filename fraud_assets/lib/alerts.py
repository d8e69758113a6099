"""Alerts that reach a person: one per condition per window, to a webhook or the log.

The sink is a Slack-compatible webhook (``FRAUD_ALERT_WEBHOOK_URL``, JSON ``{"text": ...}``)
or, by default, the log. Every message passes through the one redactor first, and every alert
is recorded in the ``alerts`` table, whose key (condition and window) is what keeps a
condition that stays failing from alerting on every tick.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass

import polars as pl
import requests

from fraud_assets.lib.redaction import redact
from fraud_assets.lib.schema import ALERTS_SCHEMA
from fraud_assets.lib.warehouse import Warehouse

TABLE = "alerts"
log = logging.getLogger("fraud_assets.alerts")


@dataclass(frozen=True)
class Alert:
    condition: str  # e.g. "check:scored_transactions:flag_rate_within_bounds"
    message: str
    severity: str = "error"


def window_start(now: dt.datetime, minutes: int) -> dt.datetime:
    """The start of the alerting window ``now`` falls in."""
    epoch = dt.datetime(1970, 1, 1)
    span = dt.timedelta(minutes=max(minutes, 1))
    return epoch + ((now - epoch) // span) * span


def alert_key(condition: str, window: dt.datetime) -> str:
    return f"{condition}/{window:%Y-%m-%dT%H:%M}"


def raise_alerts(
    wh: Warehouse,
    alerts: list[Alert],
    now: dt.datetime,
    window_minutes: int,
    webhook_url: str | None,
    post=requests.post,  # noqa: ANN001 - the HTTP call, replaceable in tests
) -> list[Alert]:
    """Send each alert not yet sent for its condition in this window; returns those sent."""
    wh.ensure_table(TABLE, ALERTS_SCHEMA, key="alert_key", indexes=["condition"])
    window = window_start(now, window_minutes)
    keys = [alert_key(a.condition, window) for a in alerts]
    seen = set(
        wh.read(TABLE, ALERTS_SCHEMA, columns=["alert_key"], where={"alert_key": keys})["alert_key"]
    )
    sent: list[Alert] = []
    rows = []
    for alert, key in zip(alerts, keys, strict=True):
        if key in seen or key in {r["alert_key"] for r in rows}:
            continue
        text = redact(
            f"[fraud platform] {alert.severity.upper()} {alert.condition}: {alert.message}"
        )[:3000]
        delivered = _deliver(text, webhook_url, post)
        rows.append(
            {
                "alert_key": key,
                "condition": alert.condition,
                "window_start": window,
                "raised_at": now,
                "severity": alert.severity,
                "message": text,
                "sink": "webhook" if webhook_url else "log",
                "delivered": delivered,
            }
        )
        sent.append(alert)
    if rows:
        wh.upsert(TABLE, pl.DataFrame(rows, schema=ALERTS_SCHEMA), key="alert_key", update=False)
    return sent


def _deliver(text: str, webhook_url: str | None, post) -> bool:  # noqa: ANN001
    if not webhook_url:
        log.error(text)
        return True
    try:
        resp = post(webhook_url, json={"text": text}, timeout=10)
        resp.raise_for_status()
        return True
    except Exception as exc:  # noqa: BLE001 - a dead webhook must not hide the alert
        log.error("%s (webhook failed: %s)", text, redact(type(exc).__name__))
        return False
