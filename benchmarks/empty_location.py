"""A benchmark-only code location: a sensor that polls the API like transactions_sensor and
launches an empty run, giving the latency floor that Dagster itself imposes."""

import os
import uuid

import dagster as dg

from fraud_assets.lib.api import ApiUnavailable, TransactionsClient
from fraud_assets.lib.payloads import parse_payload


@dg.asset
def noop() -> None:
    """Does nothing; its run measures launch and bookkeeping overhead."""


noop_job = dg.define_asset_job("noop_job", selection=[noop], executor_def=dg.in_process_executor)


@dg.sensor(job=noop_job, minimum_interval_seconds=5, default_status=dg.DefaultSensorStatus.RUNNING)
def empty_sensor(context: dg.SensorEvaluationContext) -> dg.RunRequest | dg.SkipReason:
    client = TransactionsClient(os.environ["TRANSACTIONS_API_URL"], min_interval_seconds=0)
    try:
        rows = parse_payload(client.fetch().body)
    except ApiUnavailable as exc:
        return dg.SkipReason(str(exc))
    return dg.RunRequest(
        run_key=uuid.uuid4().hex, tags={"bench/trans_nums": ",".join(rows["trans_num"].to_list())}
    )


defs = dg.Definitions(assets=[noop], jobs=[noop_job], sensors=[empty_sensor])
