"""Which hours of landed payloads need a scoring run now: the sensor's decision, without Dagster.

A payload is pending while the ledger has no entry for it, whatever its key: a payload that was
spooled while the store was down and landed later under an older key, or one left over by a
run's cap, is planned as soon as no run of its hour is waiting to take it. The run key is made
of the hour's state (newest pending key, ledger size, failed runs), so a repeated tick asks for
the same run, and a changed state (new payloads, a capped run that finished, a run that failed)
asks for a new one.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from fraud_assets.lib.landing import arrival_or_none

#: A run of the same hour and state is not asked for again after this many failures: the
#: reconciliation check (``payloads_reconciled``) then raises the alarm.
MAX_FAILED_RUNS = 5


@dataclass(frozen=True)
class HourPlan:
    """One scoring run to ask for: its hour, the payloads pending in it, and its run key."""

    hour: str
    pending: tuple[str, ...]
    run_key: str


@dataclass(frozen=True)
class RunsNow:
    """The scoring runs of each hour, as the instance reports them."""

    #: Hours with a run queued but not started.
    waiting: frozenset[str] = frozenset()
    #: Hours with a run going, and when it started.
    started: Mapping[str, dt.datetime] = field(default_factory=dict)
    #: Failed runs per hour, recently.
    failed: Mapping[str, int] = field(default_factory=dict)


def plan_hours(
    landed: Mapping[str, Iterable[str]], ledgered: set[str], runs: RunsNow
) -> list[HourPlan]:
    """The runs to ask for: one per hour with pending payloads, unless a run of that hour is
    waiting (it will take every payload landed before it starts). While a run of the hour is
    going, only payloads that landed after it started are pending: it takes the others."""
    plans = []
    for hour in sorted(landed):
        keys = sorted(k for k in landed[hour] if k not in ledgered)
        started = runs.started.get(hour)
        if started is not None:
            keys = [k for k in keys if (arrival_or_none(k) or dt.datetime.max) > started]
        failed = runs.failed.get(hour, 0)
        if not keys or hour in runs.waiting or failed >= MAX_FAILED_RUNS:
            continue
        done = sum(1 for k in landed[hour] if k in ledgered)
        run_key = f"{hour}/{keys[-1].rsplit('/', 1)[-1]}/{done}/{failed}"
        plans.append(HourPlan(hour, tuple(keys), run_key))
    return plans


def plan_decision_hours(pending: Mapping[str, tuple[int, int]], runs: RunsNow) -> list[HourPlan]:
    """The runs that import logged decisions: one per hour whose decisions are not all in
    ``scored_transactions`` (``pending``: hour -> (logged, imported)), unless a run of that
    hour is waiting (it imports everything logged before it starts)."""
    plans = []
    for hour, (logged, imported) in sorted(pending.items()):
        failed = runs.failed.get(hour, 0)
        if hour in runs.waiting or failed >= MAX_FAILED_RUNS or logged <= imported:
            continue
        plans.append(HourPlan(hour, (), f"decisions/{hour}/{logged}/{imported}/{failed}"))
    return plans
