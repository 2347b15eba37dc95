"""Write benchmark results as JSON, a Markdown table and a plot; print ratios."""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from bench.stats import Result

COLUMNS = ("name", "tps", "p50_ms", "p95_ms", "p99_ms", "max_ms", "cpu_pct", "rss_mb")


def by_name(results: list[Result]) -> dict[str, Result]:
    """Index results by scenario name."""
    return {result.name: result for result in results}


def ratios(results: list[Result]) -> dict[str, float]:
    """Full flow (one process) to ceiling and to naive, two processes to one."""
    named = by_name(results)
    one = named.get("throughput-1proc")
    pairs = {
        "flow / ceiling": (one, named.get("ceiling")),
        "flow / naive": (one, named.get("naive")),
        "2 processes / 1": (named.get("throughput-2proc"), one),
    }
    return {
        label: top.tps / bottom.tps
        for label, (top, bottom) in pairs.items()
        if top and bottom and top.tps and bottom.tps
    }


def markdown(results: list[Result]) -> str:
    """One table row per scenario, then the ratios."""
    lines = [
        "| " + " | ".join(COLUMNS) + " |",
        "|" + "---|" * len(COLUMNS),
    ]
    for result in results:
        cells = result.as_dict()
        lines.append("| " + " | ".join(_cell(cells[c]) for c in COLUMNS) + " |")
    lines.append("")
    for label, value in ratios(results).items():
        lines.append(f"- {label}: {value:.2f}")
    lines += _cores(results)
    return "\n".join(lines) + "\n"


def _cores(results: list[Result]) -> list[str]:
    """Cores each process used during the scenarios that measured them."""
    measured = [r for r in results if r.extra and "cores" in r.extra]
    if not measured:
        return []
    lines = ["", "Cores used during the scenario (1.0 = one busy core):", ""]
    for result in measured:
        cores = result.extra["cores"] if result.extra else {}
        used = ", ".join(f"{name} {value:.2f}" for name, value in cores.items())
        lines.append(f"- {result.name}: {used}; total {sum(cores.values()):.2f}")
    return lines


def _cell(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.1f}"
    return str(value)


def plot(results: list[Result], path: Path) -> None:
    """Latency percentiles against offered load; throughput by configuration."""
    figure, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5))
    for prefix, style in (("latency-", "-o"), ("floor-", "--s"), ("alerts-", ":^")):
        points = sorted(
            (r for r in results if r.name.startswith(prefix) and r.p99_ms),
            key=lambda r: r.offered_tps or 0,
        )
        loads = [r.offered_tps for r in points]
        for field in ("p50_ms", "p99_ms"):
            values = [getattr(r, field) for r in points]
            left.plot(loads, values, style, label=f"{prefix.rstrip('-')} {field}")
    left.axhline(50, color="grey", linewidth=0.8)
    left.set(xlabel="offered load (tx/s)", ylabel="latency (ms)", yscale="log")
    left.set_title("End-to-end latency")
    left.legend(fontsize=8)

    bars = [r for r in results if r.name in ("ceiling", "naive") or "proc" in r.name]
    right.bar([r.name for r in bars], [r.tps for r in bars])
    right.set(ylabel="transactions per second", title="Throughput")
    right.tick_params(axis="x", rotation=20)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def write(results: list[Result], out_dir: Path) -> None:
    """Write ``latest.json``, ``latest.md`` and ``latest.png`` under ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = [result.as_dict() for result in results]
    (out_dir / "latest.json").write_text(json.dumps(rows, indent=2) + "\n")
    (out_dir / "latest.md").write_text(markdown(results))
    plot(results, out_dir / "latest.png")
