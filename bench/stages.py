"""CPU cost per transaction of each in-process stage: ``python -m bench.stages``.

Feeds the flow's own step objects (decode and mask, velocity state, scoring,
row encoding) with the benchmark's synthetic transactions in batches, without
Bytewax, Kafka or PostgreSQL in between, and reports CPU microseconds per
transaction for each. CPU time (not wall time) is used so that other work on
a shared machine inflates the numbers less. Redis is read as in the flow, so
the scoring stage needs the local stack.
"""

from __future__ import annotations

import statistics
import time
from datetime import timedelta
from pathlib import Path
from typing import Annotated

import msgspec
import typer
from rich.console import Console
from rich.progress import track
from rich.table import Table

from bench.load import generate, read_messages
from dataflows.config import Settings
from dataflows.masking import Masker
from dataflows.pending import DecodeStep
from dataflows.scoring import ScoreStep
from dataflows.source import RawRecord
from dataflows.velocity_step import VelocityLogic
from deploy.stack import LocalStack
from featurestore.store import ProfileStore
from featurestore.velocity import AccountVelocity
from model.scorer import Scorer

console = Console()


def _records(path: Path, count: int) -> list[RawRecord]:
    messages = read_messages(generate(path, count, accounts=10_000))
    path.unlink()
    return [
        RawRecord(key, value.replace(b"@@@@@@@@", b"stagesxx"), 0, n, 0)
        for n, (key, value) in enumerate(messages)
    ]


def _velocity(batch, logics: dict) -> list:
    by_account: dict[str, list] = {}
    for account_id, pending in batch:
        by_account.setdefault(account_id, []).append(pending)
    out = []
    ttl = timedelta(hours=1)
    for account_id, values in by_account.items():
        logic = logics.get(account_id)
        if logic is None:
            logic = logics[account_id] = VelocityLogic(AccountVelocity(), ttl)
        emitted, _retain = logic.on_batch(values)
        out.extend((account_id, item) for item in emitted)
        logic.notify_at()
    return out


def measure(records: list[RawRecord], batch_size: int, settings: Settings) -> dict:
    """CPU microseconds per transaction of each stage, over one pass."""
    decode = DecodeStep(Masker.from_settings(settings))
    score = ScoreStep(
        ProfileStore.from_url(settings.redis_url), Scorer.load(settings.model_dir)
    )
    encoder = msgspec.json.Encoder()
    logics: dict = {}
    spent = {"decode + mask": 0.0, "velocity": 0.0, "score": 0.0, "encode": 0.0}
    for start in track(range(0, len(records), batch_size), description="stages"):
        clock = time.process_time()
        decoded = decode(records[start : start + batch_size])
        spent["decode + mask"] += (now := time.process_time()) - clock
        state = _velocity(decoded, logics)
        spent["velocity"] += (clock := time.process_time()) - now
        rows = score(state)
        spent["score"] += (now := time.process_time()) - clock
        encoder.encode(rows)
        spent["encode"] += time.process_time() - now
    return {stage: 1e6 * cpu / len(records) for stage, cpu in spent.items()}


def main(
    count: Annotated[int, typer.Option(help="Transactions per pass.")] = 100_000,
    batch_size: Annotated[int, typer.Option(help="Transactions per batch.")] = 500,
    repeats: Annotated[int, typer.Option(help="Passes; the median is shown.")] = 3,
    stack_dir: Annotated[Path, typer.Option(help="Local stack state.")] = Path(
        ".fraudflow/bench-stack"
    ),
) -> None:
    """Print CPU microseconds per transaction of each stage (median of passes)."""
    stack = LocalStack(stack_dir).up()
    settings = Settings(**stack.settings_update(), dev_mode=True)
    records = _records(Path("bench-stages.jsonl"), count)
    passes = [measure(records, batch_size, settings) for _ in range(repeats)]
    table = Table("stage", "CPU us / transaction")
    for stage in passes[0]:
        table.add_row(stage, f"{statistics.median(p[stage] for p in passes):.1f}")
    total = statistics.median(sum(p.values()) for p in passes)
    table.add_row("total", f"{total:.1f}")
    console.print(table)


if __name__ == "__main__":
    typer.run(main)
