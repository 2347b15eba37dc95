"""The benchmark's own arithmetic: profile stages, percentiles, ratios, ids."""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter

import psutil
import pytest

from bench.flow import CpuMeter, cpu_seconds
from bench.load import PLACEHOLDER, with_prefix
from bench.profile import breakdown, parse_raw, stage_of, top_functions
from bench.report import markdown, ratios
from bench.stats import Result, percentiles, summarize

FLOW = "_run_code (<frozen runpy>:88);<module> (run.py:355)"
RAW = [
    f"{FLOW};ScoredRowWriter._insert (dataflows/sinks.py:205);"
    "Connection.wait (psycopg/connection.py:495) 60",
    f"{FLOW};DecodeStep.__call__ (dataflows/pending.py:73);"
    "Masker.mask (dataflows/masking.py:167) 15",
    f"{FLOW};DecodeStep.__call__ (dataflows/pending.py:73) 5",
    f"{FLOW} 20",
    "_run_code (<frozen runpy>:88);<module> (run.py:353);"
    "_locate_dataflow (run.py:42);_find_and_load (<frozen>:1) 500",
    "not a stack line",
]


def test_raw_profile_lines_become_stack_counts():
    stacks = parse_raw(RAW)

    assert sum(stacks.values()) == 600
    assert len(stacks) == 5


def test_the_innermost_stage_takes_the_sample():
    frames = ("DecodeStep.__call__ (a.py:1)", "Masker.mask (b.py:2)")

    assert stage_of(frames) == "mask"
    assert stage_of(("Something.else (c.py:3)",)) == "bytewax + idle"


def test_the_breakdown_leaves_out_start_up_and_sums_to_one():
    shares = breakdown(parse_raw(RAW))

    assert shares == pytest.approx(
        {"postgres insert": 0.6, "bytewax + idle": 0.2, "mask": 0.15, "decode": 0.05}
    )


def test_top_functions_name_the_leaf_frames():
    top = top_functions(parse_raw(RAW), limit=1)

    assert top == [("Connection.wait (psycopg/connection.py:495)", 0.6)]


def test_percentiles_of_no_latencies_are_absent():
    assert percentiles([]) == {
        "p50_ms": None,
        "p95_ms": None,
        "p99_ms": None,
        "max_ms": None,
    }


def test_percentiles_follow_the_distribution():
    result = summarize("latency-1000tps", [float(n) for n in range(1, 101)], tps=5.0)

    assert result.p50_ms == pytest.approx(50.5)
    assert result.p99_ms == pytest.approx(99.01)
    assert result.max_ms == 100.0
    assert result.count == 100
    assert result.tps == 5.0


def test_ratios_compare_the_flow_with_its_baselines():
    results = [
        Result("ceiling", tps=40_000.0),
        Result("naive", tps=1_000.0),
        Result("throughput-1proc", tps=8_000.0),
        Result("throughput-2proc", tps=12_000.0),
    ]

    assert ratios(results) == pytest.approx(
        {"flow / ceiling": 0.2, "flow / naive": 8.0, "2 processes / 1": 1.5}
    )


def test_a_missing_baseline_gives_no_ratio():
    assert ratios([Result("throughput-1proc", tps=8_000.0)]) == {}


def test_the_report_lists_the_cores_each_process_used():
    cores = {"flow-0": 0.8, "broker": 0.9, "postgres": 0.25}
    table = markdown([Result("throughput-1proc", tps=9.0, extra={"cores": cores})])

    line = "- throughput-1proc: flow-0 0.80, broker 0.90, postgres 0.25; total 1.95"
    assert line in table


def test_the_table_has_a_row_per_result_and_dashes_for_gaps():
    table = markdown([Result("naive", tps=1234.5)])

    assert "| naive | 1,234.5 | - |" in table


def test_every_produced_id_is_unique_even_past_the_end_of_the_messages():
    messages = [
        (b"acct-1", b'{"txn_id":"' + PLACEHOLDER + b'-%d","x":1}' % n) for n in range(3)
    ]

    values = [value for _key, value in with_prefix(messages, "abcdefgh", 7)]

    assert len(set(values)) == 7
    assert all(PLACEHOLDER not in value for value in values)
    assert values[0].startswith(b'{"txn_id":"abcdefgh-0"')
    assert Counter(value[11:19] for value in values)[b"abcdefgh"] == 3


def test_cpu_seconds_include_children_that_ran_and_ended():
    child = subprocess.run(
        [sys.executable, "-c", "sum(i * i for i in range(3_000_000))"], check=True
    )
    assert child.returncode == 0
    ours = psutil.Process().cpu_times()
    assert cpu_seconds(os.getpid()) >= ours.user + ours.children_user
    assert ours.children_user + ours.children_system > 0.05, "the child's work"


def test_the_cpu_meter_keeps_what_a_process_used_before_it_ended():
    burn = "import time\nend = time.process_time() + 0.3\n"
    burn += "while time.process_time() < end: pass"
    child = subprocess.Popen([sys.executable, "-c", burn])
    meter = CpuMeter({"child": child.pid}, every_s=0.02)
    meter.start()
    child.wait()

    cores = meter.stop()

    assert cores["child"] > 0, "the CPU it burned before ending is counted"
