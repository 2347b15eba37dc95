"""Benchmarks of the scoring flow on the local stack: ``python -m bench``.

Scenarios: the broker's ceiling and latency floor, a naive one-message-at-a-
time scorer, backlog throughput of the full flow with one and two processes,
end-to-end latency at fixed offered loads, and memory per account of the
velocity state. Results go to ``bench-results/`` as JSON, Markdown and a plot.
"""
