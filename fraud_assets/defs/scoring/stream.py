"""The stream path in Dagster: the input topic as an external asset upstream of the decision
log, observed (lag, throughput, dead letters) by ``stream_sensor``, with checks on its lag and
its dead letters that feed the alerts. The consumers run outside Dagster's runs."""

import dagster as dg

from fraud_assets.defs.metadata import check_result
from fraud_assets.defs.resources import StreamResource, WarehouseResource
from fraud_assets.lib import stream_health
from fraud_assets.lib.clock import utc_now
from fraud_assets.lib.monitoring import Verdict
from fraud_assets.lib.redaction import redact

transaction_stream = dg.AssetSpec(
    "transaction_stream",
    group_name=__name__.split(".")[-2],  # its folder's, as for the assets found there
    kinds={"stream"},
    description="The broker topic (FRAUD_STREAM_URL, FRAUD_STREAM_INPUT) that card networks "
    "publish authorizations to; `python -m decision_api consume` workers decide it in one "
    "consumer group, into the decision log. Observed by stream_sensor.",
)


def _state(stream: StreamResource, warehouse: WarehouseResource) -> stream_health.StreamState:
    return stream_health.observe(
        stream.url, stream.topics(), stream.group, warehouse.warehouse(), utc_now()
    )


def stream_sensor(interval_seconds: int) -> dg.SensorDefinition:
    """Observes the topic every ``interval_seconds``, when there is a stream path."""

    @dg.sensor(
        name="stream_sensor",
        minimum_interval_seconds=interval_seconds,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Reports the input topic's consumer lag, the stream path's throughput and "
        "its dead letters as observations of transaction_stream.",
    )
    def sensor(
        context: dg.SensorEvaluationContext, stream: StreamResource, warehouse: WarehouseResource
    ) -> dg.SensorResult | dg.SkipReason:
        if not stream.url:
            return dg.SkipReason("no stream path (FRAUD_STREAM_URL is unset)")
        try:
            state = _state(stream, warehouse)
        except Exception as exc:  # noqa: BLE001 - a broker that is down: say so, look again
            return dg.SkipReason(f"cannot read the stream: {redact(exc)}")
        observation = dg.AssetObservation(
            asset_key=transaction_stream.key,
            metadata={
                "consumer_lag": state.lag,
                "decided_last_minute": state.decided_last_minute,
                "decided_total": state.decided_total,
                "dead_letters": state.dead_letters,
            },
        )
        return dg.SensorResult(asset_events=[observation])

    return sensor


def _unconfigured(key: dg.AssetCheckKey) -> dg.AssetCheckResult:
    verdict = Verdict(True, "no stream path (FRAUD_STREAM_URL is unset)", {})
    return check_result(key, verdict, dg.AssetCheckSeverity.WARN)


@dg.asset_check(
    asset="transaction_stream",
    description="The consumer group's lag is under FRAUD_STREAM_LAG_BOUND.",
)
def stream_lag_under_bound(
    stream: StreamResource, warehouse: WarehouseResource
) -> dg.AssetCheckResult:
    key = stream_lag_under_bound.check_key
    if not stream.url:
        return _unconfigured(key)
    verdict = stream_health.lag_check(_state(stream, warehouse), stream.lag_bound)
    return check_result(key, verdict, dg.AssetCheckSeverity.ERROR)


@dg.asset_check(
    asset="transaction_stream",
    description="At most FRAUD_STREAM_DEAD_LETTER_RATE of the messages were dead-lettered.",
)
def dead_letters_under_rate(
    stream: StreamResource, warehouse: WarehouseResource
) -> dg.AssetCheckResult:
    key = dead_letters_under_rate.check_key
    if not stream.url:
        return _unconfigured(key)
    state = _state(stream, warehouse)
    verdict = stream_health.dead_letter_check(state, stream.dead_letter_rate)
    return check_result(key, verdict, dg.AssetCheckSeverity.WARN)
