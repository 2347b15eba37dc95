"""Baselines without the flow: broker ceiling and floor, and a naive scorer.

The ceiling is how fast one process can consume and decode the transactions
with nothing else; the floor is the latency the broker alone adds; the naive
scorer handles one message at a time, the design the flow replaces.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from confluent_kafka import Consumer, TopicPartition
from rich.progress import Progress

from bench.flow import PARTITIONS, CpuMeter, Run
from bench.load import PACED_LINGER_MS
from bench.stats import Result, summarize
from dataflows.config import Settings
from dataflows.masking import Masker
from dataflows.pending import DecodeStep
from dataflows.schema import decode
from dataflows.scoring import ScoreStep
from dataflows.sinks import ScoredRowWriter
from dataflows.source import LOW_LATENCY_CONSUMER, RawRecord
from featurestore.store import ProfileStore
from featurestore.velocity import AccountVelocity
from model.scorer import Scorer


def _consumer(bootstrap: str, topic: str, eof: bool) -> Consumer:
    consumer = Consumer(
        {
            **LOW_LATENCY_CONSUMER,
            "bootstrap.servers": bootstrap,
            "enable.partition.eof": eof,
        }
    )
    consumer.assign([TopicPartition(topic, p, 0) for p in range(PARTITIONS)])
    return consumer


def ceiling(bootstrap: str, topic: str, count: int) -> Result:
    """Consume and decode ``count`` backlog messages with nothing else."""
    consumer = _consumer(bootstrap, topic, eof=True)
    seen, ended = 0, 0
    started = time.perf_counter()
    while seen < count and ended < PARTITIONS:
        for message in consumer.consume(1000, 0.1):
            if message.error():
                ended += 1
                continue
            decode(message.value())
            seen += 1
    seconds = time.perf_counter() - started
    consumer.close()
    return Result("ceiling", tps=seen / seconds, count=seen)


#: How long the floor's consumer keeps reading after the producer is done, as
#: long as a latency scenario waits for its rows: a shorter wait would leave
#: the slowest messages out of the floor's percentiles but not the flow's.
DRAIN_S = 60.0


def floor(
    bootstrap: str, run: Run, messages_path: Path, rate: float, seconds: float,
    warmup_s: float, services: dict[str, int] | None = None,
    linger_ms: float = PACED_LINGER_MS,
) -> Result:  # fmt: skip
    """End-to-end latency through the broker alone, producer in its own process.

    The consumer has the flow's settings (``fetch.wait.max.ms=5``), the
    producer the load generator's (``linger_ms``); latency is the consumer's
    wall clock minus the message's create time. Messages still missing
    ``DRAIN_S`` after the producer is done are left out; ``extra`` says how
    many were sent and received, and the cores used by the producer, this
    consumer and ``services`` (by name and pid, such as the broker).
    """
    run.create(bootstrap)
    consumer = _consumer(bootstrap, run.transactions, eof=False)
    producer = start_producer(
        bootstrap, run, messages_path, rate, seconds + warmup_s, linger_ms
    )
    meter = CpuMeter({**(services or {}), "producer": producer.pid})
    meter.start()
    # This process's own CPU: the broker and the producer are its children.
    consumer_cpu, consumer_wall = time.process_time(), time.monotonic()
    since_ms = time.time() * 1000 + warmup_s * 1000
    latencies: list[float] = []
    received, sent = 0, None
    while sent is None or received < sent:
        # A short timeout, as in the flow's source: consume() waits up to the
        # timeout to fill the batch, which would count as broker latency.
        for message in consumer.consume(1000, 0.001):
            if message.error():
                continue
            received += 1
            sent_ms = message.timestamp()[1]
            if sent_ms >= since_ms:
                latencies.append(time.time() * 1000 - sent_ms)
        if sent is None and producer.poll() is not None:
            sent = producer_count(producer)
            drain_until = time.monotonic() + DRAIN_S
        if sent is not None and time.monotonic() > drain_until:
            break
    cores = meter.stop()
    consumer_cores = (time.process_time() - consumer_cpu) / (
        time.monotonic() - consumer_wall
    )
    cores["consumer"] = round(consumer_cores, 2)
    consumer.close()
    name = f"floor-{int(rate)}tps"
    result = summarize(name, latencies, tps=len(latencies) / seconds, offered_tps=rate)
    result.extra = {
        "sent": sent, "received": received, "cores": cores,
        "producer_linger_ms": linger_ms,
    }  # fmt: skip
    return result


def start_producer(
    bootstrap: str, run: Run, messages_path: Path, rate: float, seconds: float,
    linger_ms: float = PACED_LINGER_MS,
) -> subprocess.Popen:  # fmt: skip
    """Start the paced producer process of :mod:`bench.load`."""
    command = [sys.executable, "-m", "bench.load", str(messages_path)]
    command += [run.transactions, str(rate), str(seconds), run.prefix, bootstrap]
    command.append(str(linger_ms))
    producer = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    ready = producer.stdout.readline() if producer.stdout else ""
    if ready.strip() != "ready":
        raise RuntimeError(f"expected the producer to say 'ready', got {ready!r}")
    return producer


def producer_count(producer: subprocess.Popen) -> int:
    """Messages a finished producer process reported sending."""
    out, _ = producer.communicate()
    if producer.returncode:
        raise RuntimeError(f"producer failed with exit code {producer.returncode}")
    return int(out.split()[-1])


def naive(settings: Settings, topic: str, seconds: float) -> Result:
    """Score each message with its own model call and its own INSERT.

    The same decode, masking, velocity, profile read, model and row writer as
    the flow, but one message at a time: one Redis read, one ONNX call and
    one INSERT per transaction.
    """
    decode_step = DecodeStep(Masker.from_settings(settings))
    score = ScoreStep(
        ProfileStore.from_url(settings.redis_url), Scorer.load(settings.model_dir)
    )
    writer = ScoredRowWriter.from_settings(settings, "bench-naive")
    accounts: dict[str, AccountVelocity] = {}
    consumer = _consumer(settings.kafka_bootstrap_servers, topic, eof=False)
    done = 0
    with Progress(transient=True) as progress:
        task = progress.add_task("naive", total=seconds)
        started = time.perf_counter()
        while (elapsed := time.perf_counter() - started) < seconds:
            for message in consumer.consume(100, 0.05):
                if not message.error():
                    done += _naive_one(message, decode_step, score, writer, accounts)
            progress.update(task, completed=elapsed)
    elapsed = time.perf_counter() - started
    consumer.close()
    writer.close()
    return Result("naive", tps=done / elapsed, count=done)


def _naive_one(message, decode_step, score, writer, accounts) -> int:
    record = RawRecord(
        message.key(),
        message.value(),
        message.partition(),
        message.offset(),
        message.timestamp()[1],
    )
    [keyed] = decode_step([record])
    account_id, pending = keyed
    account = accounts.setdefault(account_id, AccountVelocity())
    update = account.update(
        pending.event_ms,
        pending.amount_minor,
        pending.merchant_id,
        pending.merchant_country,
        pending.identity.device_token,
    )
    writer.write(score([(account_id, (pending, update))]))
    return 1
