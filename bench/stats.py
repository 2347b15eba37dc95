"""One benchmark result and the percentiles it reports."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np


@dataclass
class Result:
    """One scenario's numbers; absent measurements stay ``None``."""

    name: str
    tps: float | None = None
    p50_ms: float | None = None
    p95_ms: float | None = None
    p99_ms: float | None = None
    max_ms: float | None = None
    cpu_pct: float | None = None
    rss_mb: float | None = None
    count: int | None = None
    offered_tps: float | None = None
    extra: dict | None = None

    def as_dict(self) -> dict:
        """Plain dict for JSON, numbers rounded for reading."""
        return {
            key: round(value, 2) if isinstance(value, float) else value
            for key, value in asdict(self).items()
        }


def percentiles(latencies_ms: list[float]) -> dict[str, float | None]:
    """p50, p95, p99 and max of some latencies, or ``None`` for none."""
    if not latencies_ms:
        return {"p50_ms": None, "p95_ms": None, "p99_ms": None, "max_ms": None}
    values = np.asarray(latencies_ms, dtype=np.float64)
    p50, p95, p99 = np.percentile(values, [50, 95, 99])
    return {
        "p50_ms": float(p50),
        "p95_ms": float(p95),
        "p99_ms": float(p99),
        "max_ms": float(values.max()),
    }


def summarize(name: str, latencies_ms: list[float], **fields) -> Result:
    """A result holding the latencies' percentiles and the other fields."""
    return Result(name, **percentiles(latencies_ms), count=len(latencies_ms), **fields)
