"""The decision service as it is deployed: separate processes (``python -m decision_api``) on
one PostgreSQL and one registry. A worker killed under load loses and duplicates no answered
decision, two replicas share the log and both follow the champion, and generated requests
(schemathesis, from the OpenAPI document) never get a 5xx."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import polars as pl
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from prometheus_client.parser import text_string_to_metric_families

from fraud_assets.lib import decision_log
from fraud_assets.testing import register
from fraud_assets.testing.servers import free_port, wait_answering
from fraud_assets_tests.helpers.service import Deployment, bodies

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


@contextlib.contextmanager
def service(
    deployment: Deployment, port: int | None = None, *args: str
) -> Iterator[tuple[str, subprocess.Popen]]:
    """``python -m decision_api [ARGS]`` on loopback; stopped (SIGTERM, then SIGKILL) at the
    end."""
    port = port or free_port()
    log = deployment.root / f"service-{port}.log"
    with deployment.process(["--port", str(port), *args], log) as proc:
        url = f"http://127.0.0.1:{port}"
        wait_answering(f"{url}/readyz", proc, log, 90)
        yield url, proc


class Load:
    """Threads sending single decisions to the given URLs in turn, keeping what was answered
    with a 2xx: trans_num -> the model version that decided it."""

    def __init__(self, urls: list[str], work: list[dict], threads: int = 4) -> None:
        self.urls, self.work, self.answered = urls, list(work), {}
        self.errors: list[str] = []
        self._lock, self._stop = threading.Lock(), threading.Event()
        self._threads = [threading.Thread(target=self._run, args=(i,)) for i in range(threads)]

    def _run(self, i: int) -> None:
        session = requests.Session()
        for n, body in enumerate(self.work[i :: len(self._threads)]):
            url = self.urls[n % len(self.urls)]
            while not self._stop.is_set():  # as a client does: retry until answered
                try:
                    resp = session.post(f"{url}/v1/decisions", json=body, timeout=10)
                except requests.RequestException as exc:
                    self.errors.append(type(exc).__name__)
                    time.sleep(0.1)
                    continue
                if resp.ok:
                    with self._lock:
                        self.answered[body["trans_num"]] = resp.json()["model_version"]
                    break
                self.errors.append(str(resp.status_code))
                time.sleep(0.1)

    def __enter__(self) -> Load:
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self.join()

    def join(self) -> None:
        for t in self._threads:
            t.join()


def logged(deployment: Deployment, trans_nums: list[str]) -> pl.DataFrame:
    return decision_log.read_logged(deployment.warehouse, trans_nums)


def test_a_worker_killed_under_load_loses_and_duplicates_no_answered_decision(
    deployment: Deployment,
    halves,
    monkeypatch,  # noqa: ANN001
) -> None:
    work = bodies(halves[1].head(300), 4, "k")
    port = free_port()
    with Load([f"http://127.0.0.1:{port}"], work) as load:
        with service(deployment, port) as (_, proc):
            deadline = time.monotonic() + 60
            while len(load.answered) < len(work) // 4 and time.monotonic() < deadline:
                time.sleep(0.01)  # a quarter answered: the kill lands mid-load, however fast
            os.killpg(proc.pid, signal.SIGKILL)  # requests in flight are cut off
            proc.wait()
            before = dict(load.answered)
        with service(deployment, port):
            load.join()
    assert before and len(load.answered) > len(before)
    answered = sorted(load.answered)
    rows = logged(deployment, [b["trans_num"] for b in work])
    assert rows["trans_num"].is_unique().all()
    assert set(answered) <= set(rows["trans_num"])  # every answered decision is in the log
    # ... and Dagster imports each exactly once, as a service decision
    scored = import_into_dagster(deployment, rows["batch_hour"].unique().to_list(), monkeypatch)
    mine = scored.filter(pl.col("trans_num").is_in(answered))
    assert mine.height == len(answered) and mine["trans_num"].is_unique().all()
    assert set(mine["decided_by"]) == {"service"}


def workers_of(proc: subprocess.Popen) -> set[int]:
    """The live worker processes a ``--workers N`` service runs under its supervisor (not
    multiprocessing's resource tracker, nor a killed worker not reaped yet)."""
    out = set()
    for pid in Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split():
        with contextlib.suppress(OSError):
            command = Path(f"/proc/{pid}/cmdline").read_bytes()
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
            if b"spawn_main" in command and state != "Z":
                out.add(int(pid))
    return out


def test_one_of_several_workers_killed_under_load_is_replaced_and_loses_nothing(
    deployment: Deployment,
    halves,  # noqa: ANN001
) -> None:
    """``--workers 2``: one worker SIGKILLed mid-load. The other goes on serving, the
    supervisor starts a new one, and every answered decision is in the log exactly once."""
    work = bodies(halves[1].head(300), 2, "w")
    with service(deployment, None, "--workers", "2") as (url, proc):
        deadline = time.monotonic() + 60
        while len(workers_of(proc)) < 2:
            assert time.monotonic() < deadline, "the second worker never started"
            time.sleep(0.1)
        with Load([url], work) as load:
            while len(load.answered) < len(work) // 4 and time.monotonic() < deadline:
                time.sleep(0.01)
            victim = min(workers_of(proc))
            os.kill(victim, signal.SIGKILL)
            load.join()
        while victim in workers_of(proc) or len(workers_of(proc)) < 2:
            assert time.monotonic() < deadline + 60, "the killed worker was not replaced"
            time.sleep(0.1)
        scrapes = [requests.get(f"{url}/metrics", timeout=10).text for _ in range(8)]
    assert len(load.answered) == len(work)  # the clients' retries found a live worker
    # whichever worker answers a scrape, it counts every worker's decisions, the dead one's too
    totals = {decided(text) for text in scrapes}
    assert len(totals) == 1 and totals.pop() >= len(work)
    for text in scrapes:
        assert "fraud_decision_model_info{" in text and "fraud_decision_ready 1.0" in text
    rows = logged(deployment, [b["trans_num"] for b in work])
    assert rows["trans_num"].is_unique().all() and set(load.answered) <= set(rows["trans_num"])


def decided(metrics: str) -> float:
    """``fraud_decisions_total``, every outcome."""
    families = text_string_to_metric_families(metrics)
    found = [f for f in families if f.name == "fraud_decisions"]
    return sum(s.value for s in found[0].samples if s.name == "fraud_decisions_total")


def import_into_dagster(deployment: Deployment, hours: list[str], monkeypatch) -> pl.DataFrame:  # noqa: ANN001
    """Materialize scored_transactions for ``hours`` as the decisions sensor's runs would."""
    import dagster as dg

    from fraud_assets.definitions import build_resources, defs
    from fraud_assets.lib.schema import SCORED_TRANSACTIONS_SCHEMA

    for name, value in deployment.env.items():
        if name.startswith(("FRAUD_", "MLFLOW_")):
            monkeypatch.setenv(name, value)
    resources = build_resources()
    asset = defs.get_assets_def("scored_transactions")
    for hour in hours:
        result = dg.materialize([asset], partition_key=hour, resources=resources)
        assert result.success
    return deployment.warehouse.read("scored_transactions", SCORED_TRANSACTIONS_SCHEMA)


def test_two_replicas_share_one_log_and_both_follow_the_champion(
    deployment: Deployment,
    halves,
    models,  # noqa: ANN001
) -> None:
    """Load on two processes while a new champion is registered; both then serve it, and
    every request after goes to it. Every answered decision is in the one log, once."""
    work = bodies(halves[1].head(300), 3, "r")
    interval = float(deployment.env["FRAUD_DECISION_REFRESH_SECONDS"])
    with service(deployment) as (one, _), service(deployment) as (two, _):
        with Load([one, two], work[:600]) as during:
            second = register(
                models["arrival-b"], deployment.root, deployment.tracking_uri, "the second"
            )
            promoted = time.monotonic()
            during.join()
        for url in (one, two):  # each checks every interval, then loads the model beside its own
            deadline = promoted + interval + 60
            while requests.get(f"{url}/readyz", timeout=10).json()["model_version"] != second:
                assert time.monotonic() < deadline, f"{url} never served v{second}"
                time.sleep(0.1)
        with Load([one, two], work[600:]) as later:
            later.join()
    assert not during.errors and not later.errors, (during.errors + later.errors)[:5]
    assert set(later.answered.values()) == {second}  # both replicas, every request
    answered = during.answered | later.answered
    assert len(answered) == len(work)
    rows = logged(deployment, [b["trans_num"] for b in work])
    assert rows["trans_num"].is_unique().all() and set(answered) <= set(rows["trans_num"])


def test_generated_requests_never_get_a_server_error(deployment: Deployment) -> None:
    """schemathesis generates requests from the OpenAPI document, valid and not: whatever
    they hold, the service answers them without a 5xx (up to 150 cases per operation)."""
    cases = 0
    with service(deployment) as (url, _):
        schema = schemathesis.openapi.from_url(f"{url}/openapi.json")
        for result in schema.get_all_operations():
            operation = result.ok()

            @settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
            @given(case=operation.as_strategy())
            def no_server_error(case) -> None:  # noqa: ANN001
                nonlocal cases
                cases += 1
                response = case.call(base_url=url)
                assert response.status_code < 500, (case.path, response.text[:300])

            no_server_error()
    assert cases >= 300
