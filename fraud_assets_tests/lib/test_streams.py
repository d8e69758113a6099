"""The broker adapters' pure parts: URL to client settings, and Kafka's offset arithmetic
(no Kafka broker runs here, so this is what proves a released batch is not skipped)."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from fraud_assets.lib.streams import Message, Topics, _kafka_offsets, kafka_config, open_stream


@dataclass
class _Delivered:
    """What the adapter reads of a confluent-kafka message."""

    t: str
    p: int
    o: int

    def topic(self) -> str:
        return self.t

    def partition(self) -> int:
        return self.p

    def offset(self) -> int:
        return self.o


def _batch(*where: tuple[int, int]) -> list[Message]:
    return [Message(b"{}", _Delivered("transactions", p, o)) for p, o in where]


def test_kafka_commits_past_the_highest_offset_of_the_batch_in_each_partition() -> None:
    offsets = _kafka_offsets(_batch((0, 7), (1, 3), (0, 9), (0, 8)), max, 1)
    assert sorted((tp.partition, tp.offset) for tp in offsets) == [(0, 10), (1, 4)]


def test_kafka_gives_a_batch_back_from_its_lowest_offset_in_each_partition() -> None:
    offsets = _kafka_offsets(_batch((0, 7), (1, 3), (0, 9), (1, 2)), min, 0)
    assert sorted((tp.partition, tp.offset) for tp in offsets) == [(0, 7), (1, 2)]
    assert _kafka_offsets([], min, 0) == []


def test_kafka_settings_come_from_the_url_with_the_login_as_sasl() -> None:
    assert kafka_config("kafka://k1:9092,k2:9092") == {"bootstrap.servers": "k1:9092,k2:9092"}
    config = kafka_config("kafka://fraud:p%40ss%2Fw@k1:9093?sasl.mechanism=SCRAM-SHA-512")
    assert config == {
        "bootstrap.servers": "k1:9093",
        "sasl.username": "fraud",
        "sasl.password": "p@ss/w",
        "sasl.mechanism": "SCRAM-SHA-512",
        "security.protocol": "SASL_SSL",
    }


@pytest.mark.parametrize("url", ["http://x", "kafkaa://x", "", "nats"])
def test_an_unknown_broker_scheme_is_refused_with_the_choices(url: str) -> None:
    with pytest.raises(ValueError, match="nats, redis, amqp, kafka"):
        open_stream(url, Topics(), "g", "c")
