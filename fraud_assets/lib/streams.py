"""Transaction streams on real brokers, through each broker's own client, behind one small
interface: fetch a bounded batch as a member of a consumer group, acknowledge it, publish.

``FRAUD_STREAM_URL``'s scheme picks the broker:

- ``nats://`` NATS JetStream (nats-py): one stream per subject, a durable pull consumer shared
  by the group's workers; unacknowledged messages come back after ``ack_wait``.
- ``redis://`` Redis Streams (redis-py): a consumer group; a dead worker's pending entries
  are claimed by the others once idle for ``ack_wait`` (``XAUTOCLAIM``).
- ``amqp://`` RabbitMQ (aio-pika): a durable queue with competing consumers and a prefetch
  bound; unacknowledged messages return as soon as their channel closes.
- ``kafka://`` Kafka (confluent-kafka): a consumer group, offsets committed after each batch.
  Configuration only: no Kafka broker runs where the tests do.

Delivery is at least once everywhere: the decision log's key makes a redelivered message a
repeat, never a second decision. Nothing here decides anything.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, unquote, urlparse

SCHEMES = ("nats", "redis", "amqp", "kafka")


@dataclass
class Message:
    """One delivered message: its body, its broker handle, how many times it was delivered
    (when the broker says), and when it was published (epoch seconds, when known)."""

    body: bytes
    handle: Any
    attempts: int | None = None
    published_at: float | None = None


@dataclass(frozen=True)
class Topics:
    """Where transactions come from, where decisions go, where bad messages go."""

    input: str = "transactions"
    output: str = "decisions"
    dead_letters: str = "transactions-dead"


class Stream(ABC):
    """A broker connection for one consumer of one group (or a publisher only)."""

    def __init__(self, url: str, topics: Topics, group: str, consumer: str, ack_wait: float):
        self.url, self.topics, self.group = url, topics, group
        self.consumer, self.ack_wait = consumer, ack_wait

    @abstractmethod
    async def start(self, consume: bool = True) -> None:
        """Connect, and make the topics (and the group, to consume) if they are missing."""

    @abstractmethod
    async def fetch(self, limit: int, timeout: float) -> list[Message]:
        """Up to ``limit`` messages for this consumer (waiting at most ``timeout`` s)."""

    @abstractmethod
    async def ack(self, messages: list[Message]) -> None:
        """The messages are done: never delivered again."""

    async def release(self, messages: list[Message]) -> None:  # noqa: B027 - most need nothing
        """Give messages back for redelivery now (by default they come back by themselves:
        after ``ack_wait``, or when claimed)."""

    @abstractmethod
    async def publish(self, topic: str, bodies: list[bytes]) -> None:
        """Publish durably: when this returns, the broker holds every body."""

    @abstractmethod
    async def lag(self) -> int:
        """Messages of the input not yet acknowledged by the group."""

    @abstractmethod
    async def count(self, topic: str) -> int:
        """Messages a topic holds (the dead letters, say)."""

    @abstractmethod
    async def close(self) -> None: ...


def open_stream(
    url: str, topics: Topics, group: str, consumer: str, ack_wait: float = 8.0
) -> Stream:
    """The stream for ``url``'s scheme (see the module); ValueError for any other."""
    scheme = urlparse(url).scheme
    kinds: dict[str, type[Stream]] = {
        "nats": NatsStream,
        "redis": RedisStream,
        "amqp": RabbitStream,
        "kafka": KafkaStream,
    }
    if scheme not in kinds:
        raise ValueError(f"FRAUD_STREAM_URL must start with one of {', '.join(SCHEMES)}://")
    return kinds[scheme](url, topics, group, consumer, ack_wait)


def _stream_name(subject: str) -> str:
    """A JetStream stream's name for a subject (names cannot hold '.', '*', '>')."""
    return "FRAUD_" + "".join(c if c.isalnum() else "_" for c in subject).upper()


class NatsStream(Stream):
    async def start(self, consume: bool = True) -> None:
        import nats
        from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy, StreamConfig

        self._nc = await nats.connect(self.url, max_reconnect_attempts=-1)
        self._js = self._nc.jetstream()
        for subject in (self.topics.input, self.topics.output, self.topics.dead_letters):
            config = StreamConfig(name=_stream_name(subject), subjects=[subject])
            try:
                await self._js.stream_info(config.name)
            except Exception:  # noqa: BLE001 - not there yet
                await self._js.add_stream(config)
        if consume:
            config = ConsumerConfig(
                durable_name=self.group,
                ack_policy=AckPolicy.EXPLICIT,
                deliver_policy=DeliverPolicy.ALL,
                ack_wait=self.ack_wait,
                max_ack_pending=100_000,
            )
            self._sub = await self._js.pull_subscribe(
                self.topics.input, durable=self.group, config=config
            )

    async def fetch(self, limit: int, timeout: float) -> list[Message]:
        from nats.errors import TimeoutError as NatsTimeout

        try:
            got = await self._sub.fetch(batch=limit, timeout=timeout)
        except (TimeoutError, NatsTimeout):
            return []
        return [
            Message(m.data, m, m.metadata.num_delivered, m.metadata.timestamp.timestamp())
            for m in got
        ]

    async def ack(self, messages: list[Message]) -> None:
        await asyncio.gather(*(m.handle.ack() for m in messages))

    async def release(self, messages: list[Message]) -> None:
        await asyncio.gather(*(m.handle.nak(delay=1.0) for m in messages))

    async def publish(self, topic: str, bodies: list[bytes]) -> None:
        await asyncio.gather(*(self._js.publish(topic, b) for b in bodies))

    async def lag(self) -> int:
        from nats.js.errors import NotFoundError

        try:
            info = await self._js.consumer_info(_stream_name(self.topics.input), self.group)
        except NotFoundError:  # no worker has joined yet: the whole input waits
            return await self.count(self.topics.input)
        return int(info.num_pending + info.num_ack_pending)

    async def count(self, topic: str) -> int:
        return int((await self._js.stream_info(_stream_name(topic))).state.messages)

    async def close(self) -> None:
        """Leave the pull subscription, make sure the acks sent are on the server, and close
        (``drain`` would wait its 30 s timeout on a pull subscription's pending request)."""
        sub = getattr(self, "_sub", None)
        if sub is not None:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()
        with contextlib.suppress(Exception):
            await self._nc.flush(timeout=5)
        await self._nc.close()


class RedisStream(Stream):
    async def start(self, consume: bool = True) -> None:
        import redis.asyncio as redis

        self._r = redis.from_url(self.url)
        if consume:
            try:
                await self._r.xgroup_create(self.topics.input, self.group, id="0", mkstream=True)
            except Exception as exc:  # noqa: BLE001 - BUSYGROUP: the group is there already
                if "BUSYGROUP" not in str(exc):
                    raise

    async def fetch(self, limit: int, timeout: float) -> list[Message]:
        idle_ms = int(self.ack_wait * 1000)
        _, claimed, _ = await self._r.xautoclaim(
            self.topics.input, self.group, self.consumer, idle_ms, "0-0", count=limit
        )
        entries = list(claimed)
        if len(entries) < limit:
            got = await self._r.xreadgroup(
                self.group,
                self.consumer,
                {self.topics.input: ">"},
                count=limit - len(entries),
                block=max(int(timeout * 1000), 1),
            )
            entries += [e for _, batch in got for e in batch]
        return [Message(fields[b"body"], entry_id, None, _redis_time(entry_id))
                for entry_id, fields in entries if fields]  # fmt: skip

    async def ack(self, messages: list[Message]) -> None:
        if messages:
            await self._r.xack(self.topics.input, self.group, *(m.handle for m in messages))

    async def publish(self, topic: str, bodies: list[bytes]) -> None:
        async with self._r.pipeline(transaction=False) as pipe:
            for body in bodies:
                pipe.xadd(topic, {"body": body})
            await pipe.execute()

    async def lag(self) -> int:
        if not await self._r.exists(self.topics.input):
            return 0
        groups = await self._r.xinfo_groups(self.topics.input)
        for g in groups:
            if g["name"].decode() == self.group:
                return int(g.get("lag") or 0) + int(g["pending"])
        return int(await self._r.xlen(self.topics.input))

    async def count(self, topic: str) -> int:
        return int(await self._r.xlen(topic))

    async def close(self) -> None:
        await self._r.aclose()


def _redis_time(entry_id: bytes) -> float:
    return int(entry_id.split(b"-")[0]) / 1000


class RabbitStream(Stream):
    async def start(self, consume: bool = True) -> None:
        import aio_pika

        self._conn = await aio_pika.connect_robust(self.url)
        self._ch = await self._conn.channel(publisher_confirms=True)
        self._queues = {
            t: await self._ch.declare_queue(t, durable=True)
            for t in (self.topics.input, self.topics.output, self.topics.dead_letters)
        }
        self._inbox: asyncio.Queue = asyncio.Queue()
        self._unacked = 0
        if consume:
            self._consumer_ch = await self._conn.channel()
            await self._consumer_ch.set_qos(prefetch_count=2_000)
            queue = await self._consumer_ch.declare_queue(self.topics.input, durable=True)
            await queue.consume(self._inbox.put)

    async def fetch(self, limit: int, timeout: float) -> list[Message]:
        out: list[Message] = []
        deadline = time.monotonic() + timeout
        while len(out) < limit:
            wait = deadline - time.monotonic() if not out else 0.0
            try:
                m = await asyncio.wait_for(self._inbox.get(), max(wait, 0.001))
            except TimeoutError:
                break
            stamp = m.timestamp.timestamp() if m.timestamp else None
            out.append(Message(m.body, m, 2 if m.redelivered else 1, stamp))
        self._unacked += len(out)
        return out

    async def ack(self, messages: list[Message]) -> None:
        await asyncio.gather(*(m.handle.ack() for m in messages))
        self._unacked -= len(messages)

    async def release(self, messages: list[Message]) -> None:
        await asyncio.gather(*(m.handle.nack(requeue=True) for m in messages))
        self._unacked -= len(messages)

    async def publish(self, topic: str, bodies: list[bytes]) -> None:
        import datetime as dt

        import aio_pika

        now = dt.datetime.now(dt.UTC)
        exchange = self._ch.default_exchange
        await asyncio.gather(
            *(
                exchange.publish(
                    aio_pika.Message(
                        b, delivery_mode=aio_pika.DeliveryMode.PERSISTENT, timestamp=now
                    ),
                    routing_key=topic,
                )  # fmt: skip
                for b in bodies
            )
        )

    async def lag(self) -> int:
        """Ready messages, and those this consumer holds (AMQP tells a queue's ready count
        only: another consumer's unacknowledged messages are not counted)."""
        ok = await self._queues[self.topics.input].declare()  # a fresh count, not a cached one
        return int(ok.message_count or 0) + self._unacked + self._inbox.qsize()

    async def count(self, topic: str) -> int:
        return int((await self._queues[topic].declare()).message_count or 0)

    async def close(self) -> None:
        await self._conn.close()


class KafkaStream(Stream):
    """Kafka through confluent-kafka (configuration only here: see the module)."""

    async def start(self, consume: bool = True) -> None:
        from confluent_kafka import Consumer, Producer

        common = kafka_config(self.url)
        self._producer = Producer({**common, "acks": "all"})
        self._consumer = None
        if consume:
            self._consumer = Consumer(
                {
                    **common,
                    "group.id": self.group,
                    "enable.auto.commit": False,
                    "auto.offset.reset": "earliest",
                }
            )
            self._consumer.subscribe([self.topics.input])

    async def fetch(self, limit: int, timeout: float) -> list[Message]:
        got = await asyncio.to_thread(self._consumer.consume, limit, timeout)
        return [
            Message(m.value(), m, None, m.timestamp()[1] / 1000) for m in got if m.error() is None
        ]

    async def ack(self, messages: list[Message]) -> None:
        """Commit past the highest offset of these messages in each partition, not the
        consumer's position: a batch given back by ``release`` is never skipped."""
        offsets = _kafka_offsets(messages, max, 1)
        if offsets:
            await asyncio.to_thread(self._consumer.commit, offsets=offsets, asynchronous=False)

    async def release(self, messages: list[Message]) -> None:
        """Seek back to the lowest offset of these messages in each partition."""
        for tp in _kafka_offsets(messages, min, 0):
            await asyncio.to_thread(self._consumer.seek, tp)

    async def publish(self, topic: str, bodies: list[bytes]) -> None:
        for body in bodies:
            self._producer.produce(topic, body)
        await asyncio.to_thread(self._producer.flush, 30)

    async def lag(self) -> int:
        def compute() -> int:
            total = 0
            for tp in self._consumer.committed(self._consumer.assignment(), timeout=10):
                _, high = self._consumer.get_watermark_offsets(tp, timeout=10)
                total += max(high - max(tp.offset, 0), 0)
            return total

        return await asyncio.to_thread(compute)

    async def count(self, topic: str) -> int:
        raise NotImplementedError("counting a Kafka topic needs an admin client")

    async def close(self) -> None:
        if self._consumer is not None:
            await asyncio.to_thread(self._consumer.close)
        await asyncio.to_thread(self._producer.flush, 30)


def kafka_config(url: str) -> dict[str, str]:
    """librdkafka settings from a ``kafka://[user:password@]host:port[,host:port]?k=v`` URL:
    the query's pairs as they are (``security.protocol=SASL_SSL``, ``sasl.mechanism=...``),
    and the URL's user and password as the SASL login."""
    parts = urlparse(url)
    config = {"bootstrap.servers": parts.netloc.rpartition("@")[2]}
    config.update({k: v for k, v in parse_qsl(parts.query)})
    if parts.username is not None:
        config["sasl.username"] = unquote(parts.username)
        config["sasl.password"] = unquote(parts.password or "")
        config.setdefault("security.protocol", "SASL_SSL")
        config.setdefault("sasl.mechanism", "PLAIN")
    return config


def _kafka_offsets(messages: list[Message], pick: Any, past: int) -> list[Any]:
    """One TopicPartition per partition of ``messages``: ``pick`` (min or max) of their
    offsets, plus ``past``."""
    from confluent_kafka import TopicPartition

    chosen: dict[tuple[str, int], int] = {}
    for m in messages:
        key = (m.handle.topic(), m.handle.partition())
        offset = m.handle.offset()
        chosen[key] = pick(chosen.get(key, offset), offset)
    return [TopicPartition(t, p, o + past) for (t, p), o in chosen.items()]
