"""What `make run` starts, and with which options, from the settings and its own options: the
stand-in's push and publish modes, the stream worker, and the banner that says so. No process
is started (``test_platform.py`` runs the platform for real)."""

from __future__ import annotations

from pathlib import Path

import pytest

from fraud_assets.platform import Layout, _parser, banner, standin_command, start_all
from fraud_assets.settings import Settings

ROOT = Path("/nowhere")
VARIABLES = (
    "FRAUD_STANDIN_PUSH_RATE",
    "FRAUD_STANDIN_PUBLISH_RATE",
    "TRANSACTIONS_API_URL",
    "FRAUD_DECISION_PORT",
    "FRAUD_STREAM_URL",
    "FRAUD_STREAM_INPUT",
)


class Recorder:
    """Stands in for the Supervisor: records what would be started."""

    def __init__(self) -> None:
        self.started: dict[str, list[str]] = {}

    def start(self, name: str, cmd: list[str], env: dict[str, str], log: Path) -> None:
        self.started[name] = cmd


def configured(monkeypatch: pytest.MonkeyPatch, env: dict[str, str], argv: list[str]):  # noqa: ANN201
    for name in VARIABLES:
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    config = Settings()
    args = _parser(config).parse_args(argv)
    lay = Layout(ROOT, ROOT / "fraudTrain.csv", ROOT / "fraudTest.csv", {}, "http://a", "http://b")
    return config, args, lay


@pytest.mark.parametrize(
    ("env", "argv", "pushed"),
    [
        ({}, [], "2 a second from the stand-in"),
        ({"FRAUD_STANDIN_PUSH_RATE": "0.5"}, [], "0.5 a second from the stand-in"),
        ({"FRAUD_STANDIN_PUSH_RATE": "0.5"}, ["--push-rate", "7"], "7 a second from the stand-in"),
        ({}, ["--push-rate", "0"], "off (rate 0)"),
        ({"TRANSACTIONS_API_URL": "https://api.example"}, [], "off (the feed is not the local"),
    ],
)
def test_make_run_pushes_from_its_stand_in_to_its_decision_service_only(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], argv: list[str], pushed: str
) -> None:
    """The stand-in pushes at the setting's rate (or --push-rate; 0: not at all), to the
    service make run starts, and never beside another API: its demo rows have no place there."""
    config, args, lay = configured(monkeypatch, env, argv)
    cmd = standin_command(config, args, lay)
    if pushed.startswith("off"):
        assert "--push-url" not in cmd
    else:
        at = cmd.index("--push-url")
        rate = pushed.split(" ")[0]
        assert cmd[at : at + 4] == ["--push-url", "http://b", "--push-rate", rate]
    text = banner(config, args, lay)
    assert f"Pushed decisions   {pushed}" in text
    assert "Decision service   http://b/v1/decisions  (docs http://b/docs)" in text


NATS = {"FRAUD_STREAM_URL": "nats://127.0.0.1:4222", "FRAUD_STREAM_INPUT": "tx-demo"}
SECRET_URL = "amqp://fraud:s3cr3t-pw@broker.internal:5672/"


@pytest.mark.parametrize(
    ("env", "argv", "publish_rate"),
    [
        ({}, [], None),  # unset: no worker, no publishing
        (NATS, [], "5"),
        (NATS | {"FRAUD_STANDIN_PUBLISH_RATE": "40"}, [], "40"),
        (NATS, ["--publish-rate", "12.5"], "12.5"),
        (NATS, ["--publish-rate", "0"], None),  # a worker for the user's own publishers
        (NATS | {"TRANSACTIONS_API_URL": "https://api.example"}, [], None),
    ],
)
def test_make_run_starts_the_stream_path_with_one_variable(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], argv: list[str], publish_rate: str | None
) -> None:
    """FRAUD_STREAM_URL set starts one stream worker and has the local stand-in publish to the
    input topic at the setting's rate (or --publish-rate); unset starts neither. The URL reaches
    the stand-in through its environment, never its command line."""
    config, args, lay = configured(monkeypatch, env, argv)
    recorder = Recorder()
    start_all(recorder, config, args, lay)
    streaming = "FRAUD_STREAM_URL" in env
    assert ("stream" in recorder.started) == streaming
    if streaming:
        assert recorder.started["stream"][-2:] == ["decision_api", "consume"]
    cmd = recorder.started["api"]
    assert ("--publish" in cmd) == (publish_rate is not None)
    if publish_rate is not None:
        at = cmd.index("--publish")
        assert cmd[at : at + 5] == [
            "--publish",
            "--publish-topic",
            "tx-demo",
            "--publish-rate",
            publish_rate,
        ]
    assert not any("4222" in part for part in cmd)  # the URL is in its environment only
    line = next(x for x in banner(config, args, lay).splitlines() if "Stream path" in x)
    if not streaming:
        assert "off (set FRAUD_STREAM_URL" in line
    else:
        assert "nats://127.0.0.1:4222 topic tx-demo" in line and "1 worker" in line
        source = f"{publish_rate} a second from the stand-in" if publish_rate else "your publ"
        assert source in line


def test_the_banner_never_shows_the_brokers_password(monkeypatch: pytest.MonkeyPatch) -> None:
    config, args, lay = configured(monkeypatch, {"FRAUD_STREAM_URL": SECRET_URL}, [])
    text = banner(config, args, lay)
    assert "s3cr3t-pw" not in text and "fraud:" not in text
    assert "amqp://broker.internal:5672 topic transactions" in text
    recorder = Recorder()
    start_all(recorder, config, args, lay)
    assert not any("s3cr3t-pw" in part for cmd in recorder.started.values() for part in cmd)
