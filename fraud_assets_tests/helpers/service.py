"""What the decision service's and the stream consumer's tests share: request bodies made from
canonical rows, and an embedded registry with models at hand to make champion."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from fraud_assets.lib.model import TrainResult
from fraud_assets.lib.warehouse import Warehouse
from fraud_assets.testing import register, write_card_state

ROOT = Path(__file__).resolve().parents[2]

API_FIELDS = (
    "trans_num", "cc_num", "merchant", "category", "amt", "first", "last", "gender", "street",
    "city", "state", "zip", "lat", "long", "city_pop", "job", "dob", "merch_lat", "merch_long",
)  # fmt: skip


def body_of(row: dict, semantics: str = "arrival") -> dict:
    """A request body from a canonical row, as a card network would send it."""
    body = {k: row[k] for k in API_FIELDS} | {"cc_num": str(row["cc_num"])}
    if semantics == "payload":
        body["event_time"] = row["event_time"].isoformat()
    return body


@dataclass
class Registry:
    """An embedded MLflow store with models at hand to make champion."""

    root: Path
    uri: str
    models: dict[str, TrainResult]

    def promote(self, name: str) -> str:
        return register(self.models[name], self.root, self.uri, f"{name} made champion")


@dataclass
class Deployment:
    """A registry, a warehouse schema and the environment every service process gets."""

    root: Path
    env: dict[str, str]
    warehouse: Warehouse
    tracking_uri: str

    @contextlib.contextmanager
    def process(self, args: list[str], log: Path) -> Iterator[subprocess.Popen]:
        """``python -m decision_api ARGS`` in its own process group; SIGTERM at the end (then
        SIGKILL after 20 s), unless the test stopped it already."""
        with open(log, "ab") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "decision_api", *args],
                env=self.env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip
            try:
                yield proc
            finally:
                stop(proc)


def stop(proc: subprocess.Popen, sig: int = signal.SIGTERM, grace: float = 20) -> int:
    """Signal ``proc``'s group and wait for it (SIGKILL after ``grace`` s); its exit code."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    return proc.returncode


def make_deployment(
    tmp_path: Path,
    pg_url: str,
    pg_schema: str,
    halves,
    models,  # noqa: ANN001
) -> Deployment:
    """An arrival champion in a registry under ``tmp_path``, the card state in ``pg_schema``,
    and the environment for service processes."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    write_card_state(pg_url, halves[0], "arrival", pg_schema)
    register(models["arrival"], tmp_path, uri, "the first champion")
    env = {
        **os.environ,
        "FRAUD_DATA_DIR": str(tmp_path),
        "FRAUD_DATABASE_URL": pg_url,
        "FRAUD_DATABASE_SCHEMA": pg_schema,
        "MLFLOW_TRACKING_URI": uri,
        "FRAUD_FEED_SEMANTICS": "arrival",
        "FRAUD_DECISION_REFRESH_SECONDS": "0.5",
    }
    env.pop("FRAUD_DECISION_CLIENTS", None)
    return Deployment(tmp_path, env, Warehouse(pg_url, schema=pg_schema), uri)


def bodies(rows: pl.DataFrame, copies: int, tag: str) -> list[dict]:
    """``copies`` of each row, each copy a transaction of its own (its own trans_num)."""
    out = []
    for c in range(copies):
        for row in rows.iter_rows(named=True):
            out.append(body_of(row) | {"trans_num": f"{tag}{c}-{row['trans_num']}"[:64]})
    return out
