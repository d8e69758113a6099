"""The stand-in's publish mode without a broker: its options, and a broker that cannot be
reached (the real brokers' half is in ``service/test_stream.py``)."""

from __future__ import annotations

import logging
import time

import pytest
from fastapi.testclient import TestClient

from fraud_assets.standin.__main__ import _parser, publish_config
from fraud_assets.standin.app import StandinConfig, create_app
from fraud_assets.standin.publish import PublishConfig
from fraud_assets.testing.servers import free_port
from fraud_assets_tests.helpers.data import Dataset


def test_publish_takes_the_brokers_url_from_the_environment_only(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    parser = _parser()
    args = parser.parse_args(["--data", "x.csv"])
    assert publish_config(args, parser) is None  # not asked: nothing published
    args = parser.parse_args(["--data", "x.csv", "--publish", "--publish-url-env", "MY_BROKER"])
    monkeypatch.delenv("MY_BROKER", raising=False)
    with pytest.raises(SystemExit):
        publish_config(args, parser)
    monkeypatch.setenv("MY_BROKER", " redis://127.0.0.1:6379/0 ")
    argv = ["--data", "x.csv", "--publish", "--publish-url-env", "MY_BROKER"]
    argv += ["--publish-topic", "tx-a", "--publish-rate", "30"]
    config = publish_config(parser.parse_args(argv), parser)
    assert config == PublishConfig(url="redis://127.0.0.1:6379/0", topic="tx-a", rate=30.0)
    args = parser.parse_args([*argv, "--publish-rate", "0"])
    assert publish_config(args, parser) is None  # rate 0: none


def test_publishing_to_a_broker_that_is_down_keeps_trying_and_never_shows_its_password(
    dataset: Dataset, caplog: pytest.LogCaptureFixture
) -> None:
    """The stand-in keeps serving, the publisher keeps trying with a back-off, nothing is
    counted as published, and the password in the URL never reaches a log line."""
    url = f"amqp://fraud:s3cr3t-pw@127.0.0.1:{free_port()}/"
    publish = PublishConfig(url=url, rate=50, min_backoff_seconds=0.1, max_backoff_seconds=0.2)
    config = StandinConfig(data=dataset.test_csv, publish=publish)
    caplog.set_level(logging.DEBUG, logger="fraud_assets.standin")
    with TestClient(create_app(config)) as client:
        deadline = time.monotonic() + 20
        while client.get("/health").json()["publish"]["failures"] < 3:
            assert time.monotonic() < deadline, "the publisher never retried"
            time.sleep(0.1)
        health = client.get("/health").json()
        assert client.get("/current-transactions").status_code == 200
        assert client.get("/_control/published").json()["trans_num"] == []
    assert health["publish"]["alive"] and health["publish"]["published"] == 0
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert any("publishing pauses" in r.getMessage() for r in warnings)
    assert all("s3cr3t-pw" not in r.getMessage() for r in caplog.records)
    assert all("s3cr3t-pw" not in (r.exc_text or "") for r in caplog.records)
