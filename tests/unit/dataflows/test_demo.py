"""The demo's reading of the flow's metrics and its wait for the flow to start."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from dataflows import demo

LAG = 'fraudflow_consumer_lag_messages{topic="transactions",partition="0"} 0.0\n'
SCORED = 'fraudflow_transactions_total{outcome="scored"} 12.0\n'


class Exposition:
    """A /metrics endpoint whose body the test changes while it serves."""

    def __init__(self) -> None:
        self.body = ""
        handler = self._handler()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/metrics"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        exposition = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                payload = exposition.body.encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args: object) -> None:
                pass

        return Handler


class FakeChildren:
    """Children whose flow may have exited."""

    def __init__(self, exited: bool = False) -> None:
        self.exited = exited
        self.checks = 0

    def check(self) -> None:
        self.checks += 1
        if self.exited:
            raise RuntimeError("flow exited with 1")


@pytest.fixture
def exposition() -> Iterator[Exposition]:
    served = Exposition()
    yield served
    served.server.shutdown()
    served.server.server_close()


def test_consuming_only_once_the_lag_gauge_is_published(exposition: Exposition):
    reader = demo.MetricsReader(exposition.url)
    exposition.body = SCORED
    assert not reader.consuming()
    exposition.body = SCORED + LAG
    assert reader.consuming()


def test_an_unreachable_flow_is_not_consuming():
    assert not demo.MetricsReader("http://127.0.0.1:9/metrics").consuming()


def test_wait_returns_when_the_flow_starts_consuming(exposition: Exposition):
    reader = demo.MetricsReader(exposition.url)
    children = FakeChildren()
    timer = threading.Timer(0.3, lambda: setattr(exposition, "body", LAG))
    timer.start()
    demo.wait_until_consuming(reader, children.check, timeout_s=30, poll_s=0.05)
    timer.join()
    assert children.checks >= 1


def test_wait_gives_up_after_the_timeout(exposition: Exposition):
    reader = demo.MetricsReader(exposition.url)
    with pytest.raises(RuntimeError, match="not consuming"):
        demo.wait_until_consuming(
            reader, FakeChildren().check, timeout_s=0.2, poll_s=0.05
        )


def test_wait_stops_when_the_flow_exits(exposition: Exposition):
    reader = demo.MetricsReader(exposition.url)
    with pytest.raises(RuntimeError, match="exited"):
        demo.wait_until_consuming(reader, FakeChildren(exited=True).check, timeout_s=30)
