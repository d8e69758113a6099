"""What Dagster knows of the stream path: the group's lag, the dead letters, the throughput,
and whether they are within bounds. The consumer runs outside Dagster; this only looks."""

from __future__ import annotations

import asyncio
import datetime as dt
from dataclasses import dataclass

from fraud_assets.lib import decision_log
from fraud_assets.lib.monitoring import Verdict
from fraud_assets.lib.streams import Topics, open_stream
from fraud_assets.lib.warehouse import Warehouse


@dataclass(frozen=True)
class StreamState:
    """The input topic as the group sees it, and what the stream path decided lately."""

    lag: int
    dead_letters: int
    decided_total: int
    decided_last_minute: int


async def _broker_figures(url: str, topics: Topics, group: str) -> tuple[int, int]:
    stream = open_stream(url, topics, group, "dagster-observer")
    await stream.start(consume=False)
    try:
        return await stream.lag(), await stream.count(topics.dead_letters)
    finally:
        await stream.close()


def observe(url: str, topics: Topics, group: str, wh: Warehouse, now: dt.datetime) -> StreamState:
    """Read the broker (lag, dead letters) and the decision log (throughput)."""
    lag, dead = asyncio.run(_broker_figures(url, topics, group))
    total, recent = decision_log.stream_counts(wh, now - dt.timedelta(minutes=1))
    return StreamState(lag, dead, total, recent)


def lag_check(state: StreamState, bound: int) -> Verdict:
    return Verdict(
        state.lag <= bound,
        f"{state.lag} transactions wait in the input topic (bound {bound})",
        {"lag": state.lag, "bound": bound},
    )


def dead_letter_check(state: StreamState, rate: float) -> Verdict:
    seen = state.dead_letters + state.decided_total
    share = state.dead_letters / seen if seen else 0.0
    return Verdict(
        share <= rate,
        f"{state.dead_letters} of {seen} messages were dead-lettered "
        f"({share:.2%}; bound {rate:.2%})",
        {"dead_letters": state.dead_letters, "share": share, "bound": rate},
    )
