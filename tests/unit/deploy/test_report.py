"""Tests of the run report: panels from each source, and the PNG they make."""

from __future__ import annotations

import json
from pathlib import Path

from deploy import report
from deploy.report import Panel, from_bench, plot, score_histogram, write_page


def synthetic_panels() -> list[Panel]:
    seconds = [0.0, 5.0, 10.0, 15.0]
    latency = {"p50": (seconds, [10, 11, 12, 13]), "p99": (seconds, [40, 45, 60, 48])}
    scores = {"transactions": (["0.05", "0.10", "1.00"], [700, 200, 100])}
    return [
        Panel("End-to-end latency", "s", "ms", latency),
        Panel(
            "Throughput", "s", "tx/s", {"scored": (seconds, [900, 1000, 1100, 1000])}
        ),
        Panel("Score distribution", "bucket", "n", scores, kind="bar"),
        Panel("Alert rate", "s", "%", {"alerted / scored": (seconds, [2, 3, 2.5, 2])}),
    ]


def test_the_plot_draws_each_panel_with_its_data(tmp_path: Path):
    figure = plot(synthetic_panels(), tmp_path / "run.png")

    assert (tmp_path / "run.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    titles = [axis.get_title() for axis in figure.axes]
    assert titles == ["End-to-end latency", "Throughput", "Score distribution",
                      "Alert rate"]  # fmt: skip
    latency, throughput, scores, alerts = figure.axes
    p99 = next(line for line in latency.get_lines() if line.get_label() == "p99")
    assert list(p99.get_ydata()) == [40, 45, 60, 48]
    objective = [
        line for line in latency.get_lines() if line.get_label() == "objective"
    ]
    assert list(objective[0].get_ydata()) == [50.0, 50.0]
    assert list(throughput.get_lines()[0].get_ydata()) == [900, 1000, 1100, 1000]
    assert [bar.get_height() for bar in scores.patches] == [700, 200, 100]
    assert list(alerts.get_lines()[0].get_ydata()) == [2, 3, 2.5, 2]


def test_an_empty_panel_says_why_instead_of_drawing(tmp_path: Path):
    panels = synthetic_panels()
    panels[3] = Panel("Alert rate", "s", "%", note="not recorded by the benchmark")
    figure = plot(panels, tmp_path / "run.png")
    alerts = figure.axes[3]
    assert not alerts.get_lines()
    assert [text.get_text() for text in alerts.texts] == [
        "not recorded by the benchmark"
    ]


def test_cumulative_score_buckets_become_counts_per_bucket():
    answer = [
        {"metric": {"le": "+Inf"}, "value": [0, "100"]},
        {"metric": {"le": "0.5"}, "value": [0, "70"]},
        {"metric": {"le": "1.0"}, "value": [0, "100"]},
        {"metric": {"le": "0.05"}, "value": [0, "40"]},
    ]
    assert score_histogram(answer) == (["0.05", "0.50", "1.00"], [40, 30, 30])


def test_bench_results_give_percentiles_and_throughput_per_scenario(tmp_path):
    results = [
        {"name": "ceiling", "tps": 44000.0, "p50_ms": None, "p95_ms": None,
         "p99_ms": None},
        {"name": "floor", "tps": 1300.0, "p50_ms": 40.5, "p95_ms": 86.5,
         "p99_ms": 249.4},
    ]  # fmt: skip
    path = tmp_path / "latest.json"
    path.write_text(json.dumps(results))

    latency, throughput, scores, alerts = from_bench(path)
    assert latency.series["p99"] == (["floor"], [249.4])
    assert throughput.series["scored"] == (["ceiling", "floor"], [44000.0, 1300.0])
    assert not scores.series
    assert "benchmark" in scores.note
    assert not alerts.series


def test_the_page_embeds_the_png_and_lists_headline_figures(tmp_path: Path):
    page = write_page(synthetic_panels(), tmp_path / "out", "A run")
    text = page.read_text()
    assert f"![run report]({report.PNG_NAME})" in text
    assert "| End-to-end latency, p99 (last) | 48.00 |" in text
    assert "Score distribution" not in text
    assert (tmp_path / "out" / report.PNG_NAME).exists()
