"""Synthetic load for the benchmarks: encoded transactions and paced producers.

Messages are drawn once from the simulator and encoded with a fixed
placeholder in front of every transaction id; each scenario swaps in its own
prefix of the same length while producing, so no two scenarios share an id
(the Postgres sink would take a repeated id for a replay and skip it) and no
scenario pays for simulation while it runs.

Run as a module, this is the paced producer process of the latency
scenarios::

    python -m bench.load MESSAGES TOPIC RATE SECONDS PREFIX BOOTSTRAP LINGER_MS

How long the paced producer lingers decides how hard the local broker works.
The in-memory broker keeps every produced batch as one object and, on every
fetch that finds new data in a partition, lists all of that partition's
objects to find the offsets it asked for; each fetch also holds its answer
for the whole ``fetch.wait.max.ms``. Its CPU therefore grows with the number
of batches stored, not messages: at 2,000 tx/s over four partitions with
``linger.ms=5`` it climbed from 0.45 to over 1.0 core within 40 s and the
floor's p99 from 14 to 627 ms, while with ``linger.ms=20`` it stayed between
0.17 and 0.42 core and the p99 between 26 and 32 ms (scratch probe on a
fresh broker, 5 s windows). Latency is measured from the message's create
time, so the floor and the flow both include the producer's batching.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Iterator
from itertools import cycle, islice
from pathlib import Path
from typing import Final

from confluent_kafka import Producer
from rich.progress import track

from dataflows.schema import encode
from dataflows.simulator import TransactionSimulator
from dataflows.simulator.rate import RateLimiter

LOG = logging.getLogger(__name__)

#: Stands for a scenario's id prefix in stored messages; same length as one.
PLACEHOLDER: Final = b"@@@@@@@@"

#: The load generator's producer settings (a few ms of batching, because the
#: local broker copes badly with many tiny produce requests).
PRODUCER_CONFIG: Final = {
    "linger.ms": 5,
    "batch.num.messages": 10_000,
    "queue.buffering.max.messages": 1_000_000,
    "compression.type": "lz4",
}


#: ``linger.ms`` of the paced producer unless told otherwise: long enough to
#: keep the local broker's stored batches, and so its fetch cost, from
#: growing past a core within a scenario (see the module docstring).
PACED_LINGER_MS: Final = 20.0


def generate(path: Path, count: int, accounts: int, seed: int = 7) -> Path:
    """Write ``count`` encoded transactions, one JSON document a line."""
    prefix = PLACEHOLDER.decode() + "-"
    simulator = TransactionSimulator(seed=seed, accounts=accounts, id_prefix=prefix)
    pairs = islice(simulator.stream(), count)
    with path.open("wb") as out:
        for txn, _label in track(pairs, total=count, description="simulating"):
            out.write(encode(txn) + b"\n")
    return path


def read_messages(path: Path) -> list[tuple[bytes, bytes]]:
    """Return ``(key, value)`` pairs of a generated file, keyed by account."""
    return read_messages_from(path.read_bytes().splitlines())


def read_messages_from(lines: list[bytes]) -> list[tuple[bytes, bytes]]:
    """Return ``(key, value)`` pairs of generated lines, keyed by account."""
    messages = []
    for line in lines:
        line = line.rstrip(b"\n")
        start = line.index(b'"account_id":"') + len(b'"account_id":"')
        key = line[start : line.index(b'"', start)]
        messages.append((key, line))
    return messages


def with_prefix(
    messages: list[tuple[bytes, bytes]], prefix: str, count: int
) -> Iterator[tuple[bytes, bytes]]:
    """Yield ``count`` messages, each id carrying ``prefix``.

    Past the end of ``messages`` it starts again with the prefix's last three
    characters replaced by the lap number, so ids stay unique.
    """
    assert len(prefix.encode()) == len(PLACEHOLDER), prefix
    marker = prefix.encode()
    for number, (key, value) in enumerate(islice(cycle(messages), count)):
        lap = number // len(messages)
        tag = marker if not lap else marker[:-3] + b"%03d" % lap
        yield key, value.replace(PLACEHOLDER, tag, 1)


def produce_backlog(
    bootstrap: str, topic: str, messages: list[tuple[bytes, bytes]], prefix: str,
    count: int,
) -> None:  # fmt: skip
    """Produce ``count`` messages as fast as the broker takes them."""
    producer = Producer({"bootstrap.servers": bootstrap, **PRODUCER_CONFIG})
    stream = with_prefix(messages, prefix, count)
    for number, (key, value) in enumerate(
        track(stream, total=count, description=f"backlog {topic}")
    ):
        _produce(producer, topic, key, value)
        if number % 5000 == 0:
            producer.poll(0)
    left = producer.flush(60)
    if left:
        raise RuntimeError(f"expected every backlog message delivered, {left} left")


def _produce(producer: Producer, topic: str, key: bytes, value: bytes) -> None:
    while True:
        try:
            producer.produce(topic, value, key)
            return
        except BufferError:
            producer.poll(0.01)


def produce_paced(
    bootstrap: str, topic: str, messages: list[tuple[bytes, bytes]], prefix: str,
    rate: float, seconds: float, linger_ms: float = PACED_LINGER_MS,
) -> int:  # fmt: skip
    """Produce at ``rate`` messages a second for ``seconds``; return the count."""
    config = {**PRODUCER_CONFIG, "linger.ms": linger_ms}
    producer = Producer({"bootstrap.servers": bootstrap, **config})
    limiter = RateLimiter(rate, slice_s=0.002)
    stream = with_prefix(messages, prefix, int(rate * seconds) + 1)
    sent = 0
    started = time.monotonic()
    while time.monotonic() - started < seconds:
        grant = limiter.acquire()
        for key, value in islice(stream, grant):
            _produce(producer, topic, key, value)
            sent += 1
        producer.poll(0)
    producer.flush(30)
    return sent


def main(argv: list[str]) -> None:
    """Entry point of the paced producer process (see the module docstring)."""
    path, topic, rate, seconds, prefix, bootstrap, linger_ms = argv
    messages = read_messages(Path(path))
    print("ready", flush=True)
    sent = produce_paced(
        bootstrap, topic, messages, prefix, float(rate), float(seconds),
        float(linger_ms),
    )  # fmt: skip
    print(sent)


if __name__ == "__main__":
    main(sys.argv[1:])
