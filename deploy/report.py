"""A one-page report of a pipeline run: latency, throughput, scores, alerts.

``python -m deploy.report`` (``just report``) reads a run from one of two
sources and draws four panels into ``report.png``, embedded in ``report.md``:

- a Prometheus server that scraped the run (``--url``, over the last
  ``--minutes``): latency percentiles and throughput over time from the
  recording rules, the score distribution from the score histogram, and the
  share of scored transactions sent to the alert topic;
- a benchmark result file (``--bench bench-results/latest.json``): the same
  latency and throughput figures per scenario; a benchmark records neither
  scores nor alerts, so those panels say so.

``python -m deploy.observability`` writes this report at the end of its run.

Example:
    python -m deploy.report --url http://127.0.0.1:9090 --minutes 10
"""

from __future__ import annotations

import json
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, Final, Literal

import typer
from rich.console import Console

#: Percentile series of the end-to-end latency, by recording rule.
LATENCY_RULES: Final = {
    "p50": "fraudflow:e2e_latency_seconds:p50_1m",
    "p95": "fraudflow:e2e_latency_seconds:p95_1m",
    "p99": "fraudflow:e2e_latency_seconds:p99_1m",
}
THROUGHPUT_QUERY: Final = "fraudflow:transactions_by_outcome:rate1m"
ALERT_QUERY: Final = "100 * fraudflow:alert_ratio:rate5m"
SCORE_QUERY: Final = "sum by (le) (fraudflow_score_bucket)"

#: The latency objective, drawn on the latency panel.
OBJECTIVE_MS: Final = 50.0

PNG_NAME: Final = "report.png"
PAGE_NAME: Final = "report.md"


@dataclass
class Panel:
    """One chart: named series of (x, y) points, drawn as lines or bars.

    Attributes:
        title: Shown above the chart.
        xlabel: Meaning of the x axis.
        ylabel: Meaning and unit of the y axis.
        series: Label to ``(x values, y values)``.
        kind: ``line`` for time series, ``bar`` for categories.
        note: Shown instead of a chart when ``series`` is empty.
    """

    title: str
    xlabel: str
    ylabel: str
    series: dict[str, tuple[list[Any], list[float]]] = field(default_factory=dict)
    kind: Literal["line", "bar"] = "line"
    note: str = "no data"


def query_range(
    url: str, promql: str, start: datetime, end: datetime, step_s: float
) -> list[dict]:
    """Return the matrix ``promql`` gives over ``[start, end]``.

    Raises:
        RuntimeError: The server refused the query (its error is quoted).
    """
    params = {
        "query": promql,
        "start": start.timestamp(),
        "end": end.timestamp(),
        "step": step_s,
    }
    return _api(url, "query_range", params)


def query_instant(url: str, promql: str, at: datetime) -> list[dict]:
    """Return the vector ``promql`` gives at ``at``."""
    return _api(url, "query", {"query": promql, "time": at.timestamp()})


def _api(url: str, endpoint: str, params: dict[str, Any]) -> list[dict]:
    request = f"{url.rstrip('/')}/api/v1/{endpoint}?{urllib.parse.urlencode(params)}"
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
        answer = json.loads(response.read())
    if answer.get("status") != "success":
        raise RuntimeError(f"query {params['query']!r}: {answer.get('error')!r}")
    return answer["data"]["result"]


def _points(
    result: dict, start: datetime, scale: float = 1.0
) -> tuple[list[Any], list[float]]:
    """Seconds since ``start`` and values of one range-query series."""
    origin = start.timestamp()
    times, values = [], []
    for stamp, value in result["values"]:
        if value not in ("NaN", "+Inf", "-Inf"):
            times.append(round(float(stamp) - origin, 3))
            values.append(float(value) * scale)
    return times, values


def score_histogram(result: list[dict]) -> tuple[list[Any], list[float]]:
    """Turn cumulative ``le`` buckets into counts per bucket, labelled by bound."""
    cumulative = sorted(
        (float(series["metric"]["le"]), float(series["value"][1])) for series in result
    )
    labels, counts, below = [], [], 0.0
    for upper, count in cumulative:
        if upper == float("inf"):
            continue
        labels.append(f"{upper:.2f}")
        counts.append(count - below)
        below = count
    return labels, counts


def from_prometheus(
    url: str, start: datetime, end: datetime, step_s: float = 5.0
) -> list[Panel]:
    """Read a run's panels from the Prometheus server at ``url``."""
    latency = _latency_panel("seconds since start", "line")
    for name, rule in LATENCY_RULES.items():
        for result in query_range(url, rule, start, end, step_s):
            latency.series[name] = _points(result, start, scale=1000.0)
    throughput = _throughput_panel("seconds since start", "line")
    for result in query_range(url, THROUGHPUT_QUERY, start, end, step_s):
        throughput.series[result["metric"].get("outcome", "all")] = _points(
            result, start
        )
    alerts = _alert_panel("seconds since start", "line")
    for result in query_range(url, ALERT_QUERY, start, end, step_s):
        alerts.series["alerted / scored"] = _points(result, start)
    scores = _score_panel()
    labels, counts = score_histogram(query_instant(url, SCORE_QUERY, end))
    if labels:
        scores.series["transactions"] = (labels, counts)
    return [latency, throughput, scores, alerts]


def from_bench(path: Path) -> list[Panel]:
    """Read the panels of a benchmark result file (a list of scenario results)."""
    results = json.loads(path.read_text())
    latency = _latency_panel("scenario", "bar")
    for name in LATENCY_RULES:
        timed = [r for r in results if r.get(f"{name}_ms") is not None]
        if timed:
            latency.series[name] = (
                [r["name"] for r in timed],
                [float(r[f"{name}_ms"]) for r in timed],
            )
    throughput = _throughput_panel("scenario", "bar")
    counted = [r for r in results if r.get("tps") is not None]
    if counted:
        throughput.series["scored"] = (
            [r["name"] for r in counted],
            [float(r["tps"]) for r in counted],
        )
    absent = "not recorded by the benchmark"
    scores, alerts = _score_panel(), _alert_panel("scenario", "bar")
    scores.note, alerts.note = absent, absent
    return [latency, throughput, scores, alerts]


def _latency_panel(xlabel: str, kind: Literal["line", "bar"]) -> Panel:
    return Panel("End-to-end latency", xlabel, "milliseconds", kind=kind)


def _throughput_panel(xlabel: str, kind: Literal["line", "bar"]) -> Panel:
    return Panel("Throughput", xlabel, "transactions per second", kind=kind)


def _alert_panel(xlabel: str, kind: Literal["line", "bar"]) -> Panel:
    return Panel("Alert rate", xlabel, "% of scored sent to alerts", kind=kind)


def _score_panel() -> Panel:
    return Panel("Score distribution", "score bucket (upper bound)", "transactions",
                 kind="bar")  # fmt: skip


def plot(panels: list[Panel], path: Path) -> Any:
    """Draw the panels on a 2x2 grid into a PNG at ``path``; return the figure."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    figure, axes = plt.subplots(2, 2, figsize=(13, 8), layout="constrained")
    for axis, panel in zip(axes.flat, panels, strict=False):
        _draw(axis, panel)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return figure


def _draw(axis: Any, panel: Panel) -> None:
    axis.set_title(panel.title)
    axis.set_xlabel(panel.xlabel)
    axis.set_ylabel(panel.ylabel)
    if not panel.series:
        axis.text(0.5, 0.5, panel.note, ha="center", va="center",
                  transform=axis.transAxes, color="gray")  # fmt: skip
        return
    if panel.kind == "line":
        for label, (xs, ys) in panel.series.items():
            axis.plot(xs, ys, label=label)
    else:
        _bars(axis, panel)
    if panel.title == "End-to-end latency":
        axis.axhline(OBJECTIVE_MS, color="red", linestyle="--", label="objective")
    axis.legend(loc="best", fontsize="small")


def _bars(axis: Any, panel: Panel) -> None:
    """Grouped bars: one group per category, one bar per series."""
    categories = list(dict.fromkeys(x for xs, _ in panel.series.values() for x in xs))
    width = 0.8 / len(panel.series)
    for offset, (label, (xs, ys)) in enumerate(panel.series.items()):
        positions = [categories.index(x) + offset * width for x in xs]
        axis.bar(positions, ys, width=width, label=label)
    axis.set_xticks([i + 0.4 - width / 2 for i in range(len(categories))])
    axis.set_xticklabels(categories, rotation=45, ha="right", fontsize="small")


def summary_rows(panels: list[Panel]) -> list[tuple[str, str]]:
    """Return the headline figure of each series.

    That is the last value of a time series and the largest of a category
    series; the score distribution has no single headline and is left out.
    """
    rows = []
    for panel in panels:
        for label, (_xs, ys) in panel.series.items():
            if not ys or panel.title == "Score distribution":
                continue
            value = ys[-1] if panel.kind == "line" else max(ys)
            which = "last" if panel.kind == "line" else "highest"
            rows.append((f"{panel.title}, {label} ({which})", f"{value:,.2f}"))
    return rows


def write_page(panels: list[Panel], out_dir: Path, title: str) -> Path:
    """Write ``report.png`` and a Markdown page embedding it; return the page."""
    plot(panels, out_dir / PNG_NAME)
    lines = [f"# {title}", "", f"![run report]({PNG_NAME})", ""]
    rows = summary_rows(panels)
    if rows:
        lines += ["| figure | value |", "|---|---|"]
        lines += [f"| {name} | {value} |" for name, value in rows]
    page = out_dir / PAGE_NAME
    page.write_text("\n".join(lines) + "\n")
    return page


def main(
    url: Annotated[str, typer.Option(help="Prometheus that scraped the run.")] = (
        "http://127.0.0.1:9090"
    ),
    minutes: Annotated[
        float, typer.Option(min=1, help="How far back the run started.")
    ] = 15.0,
    bench: Annotated[
        Path | None, typer.Option(help="Report this benchmark JSON instead.")
    ] = None,
    out: Annotated[Path, typer.Option(help="Directory to write to.")] = Path(
        ".fraudflow/report"
    ),
) -> None:
    """Write report.png and report.md for a run."""
    console = Console()
    if bench is not None:
        panels, title = from_bench(bench), f"Benchmark {bench.name}"
    else:
        end = datetime.now(UTC)
        panels = from_prometheus(url, end - timedelta(minutes=minutes), end)
        title = f"Run of the last {minutes:g} minutes"
    page = write_page(panels, out, title)
    console.print(f"report written to {page} and {page.with_name(PNG_NAME)}")


if __name__ == "__main__":
    typer.run(main)
