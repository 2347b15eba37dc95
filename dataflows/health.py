"""Liveness and readiness endpoints for Kubernetes probes.

A :class:`HealthServer` answers from a daemon thread, beside the flow:

``GET /livez``
    200 while the flow loop has reported progress (:meth:`HealthServer.beat`)
    within ``liveness_timeout_s``, else 503. A stuck flow is restarted by the
    kubelet; it resumes from its last snapshot.
``GET /readyz``
    200 when every registered check passes, else 503. Checks are callables
    registered by the flow (broker, PostgreSQL and Redis reachable, model
    loaded); they run at most once per ``cache_s`` however often the probes
    come, so probing stays cheap for the services checked. A check must bound
    its own time (a client timeout of a second or so): probes wait for it.

Both answer with a JSON body naming each check's state, for people reading
``kubectl describe`` or curling the pod.

Example:
    >>> server = HealthServer(port=0).start()
    >>> server.add_check("model", lambda: True)
    >>> server.readiness()["status"]
    'ready'
    >>> server.stop()
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Final

import orjson

from dataflows.logs import mask_pii

logger = logging.getLogger(__name__)

#: A check passes by returning anything but ``False`` and by not raising.
Check = Callable[[], object]

#: Longest error text a check reports; the rest is cut.
MAX_ERROR_CHARS: Final = 200


class HealthServer:
    """Serves ``/livez`` and ``/readyz`` from a daemon thread.

    Args:
        host: Address to bind; all interfaces by default, as a pod needs.
        port: TCP port; 0 picks a free one (see :attr:`port`).
        liveness_timeout_s: How long the flow may go without a beat before
            it counts as stuck. Must exceed the longest quiet spell of a
            healthy flow (a slow epoch, a retry backoff), or the kubelet
            restarts a flow that was only waiting.
        cache_s: How long a readiness result is reused.
        clock: Monotonic seconds; tests pass a fake.
    """

    def __init__(
        self,
        host: str = "0.0.0.0",  # noqa: S104
        port: int = 8080,
        liveness_timeout_s: float = 30.0,
        cache_s: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.host = host
        self.liveness_timeout_s = liveness_timeout_s
        self.cache_s = cache_s
        self._clock = clock
        self._checks: dict[str, Check] = {}
        self._last_beat = clock()
        self._cached: tuple[float, dict[str, Any]] | None = None
        self._was_ready: bool | None = None
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer((host, port), _handler_for(self))
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        """The TCP port actually bound."""
        return self._server.server_address[1]

    def add_check(self, name: str, check: Check) -> None:
        """Register a readiness check under ``name`` (replacing any before)."""
        with self._lock:
            self._checks[name] = check
            self._cached = None

    def beat(self) -> None:
        """Report that the flow loop made progress; cheap enough per batch."""
        self._last_beat = self._clock()

    def liveness(self) -> dict[str, Any]:
        """The body of ``/livez``; ``status`` is ``alive`` or ``stuck``."""
        age = self._clock() - self._last_beat
        alive = age <= self.liveness_timeout_s
        return {
            "status": "alive" if alive else "stuck",
            "seconds_since_progress": round(age, 3),
            "timeout_s": self.liveness_timeout_s,
        }

    def readiness(self) -> dict[str, Any]:
        """The body of ``/readyz``; ``status`` is ``ready`` or ``not_ready``."""
        with self._lock:
            now = self._clock()
            if self._cached is None or now - self._cached[0] >= self.cache_s:
                self._cached = (now, self._run_checks())
            return self._cached[1]

    def _run_checks(self) -> dict[str, Any]:
        checks = {name: _run(check) for name, check in self._checks.items()}
        ready = all(state["ok"] for state in checks.values())
        if ready != self._was_ready:
            failing = sorted(name for name, s in checks.items() if not s["ok"])
            logger.info("readiness changed ready=%s failing=%s", ready, failing)
            self._was_ready = ready
        return {"status": "ready" if ready else "not_ready", "checks": checks}

    def start(self) -> HealthServer:
        """Start answering in a daemon thread; return ``self``."""
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="fraudflow-health", daemon=True
        )
        self._thread.start()
        logger.info("health server started host=%s port=%d", self.host, self.port)
        return self

    def stop(self) -> None:
        """Stop answering and release the port."""
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join()

    def __enter__(self) -> HealthServer:
        """Start the server for a ``with`` block."""
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        """Stop the server at the end of a ``with`` block."""
        self.stop()


def _run(check: Check) -> dict[str, Any]:
    """Run one check; an exception or ``False`` fails it."""
    started = time.perf_counter()
    try:
        ok = check() is not False
        error = None if ok else "check returned False"
    except Exception as exc:  # any failure, of any kind, means not ready
        ok = False
        error = mask_pii(f"{type(exc).__name__}: {exc}")[:MAX_ERROR_CHARS]
    elapsed_ms = round((time.perf_counter() - started) * 1000, 1)
    return {"ok": ok, "error": error, "ms": elapsed_ms}


def _handler_for(health: HealthServer) -> type[BaseHTTPRequestHandler]:
    """A request handler class bound to one server's state."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            path = self.path.partition("?")[0]
            if path == "/livez":
                body = health.liveness()
                ok = body["status"] == "alive"
            elif path == "/readyz":
                body = health.readiness()
                ok = body["status"] == "ready"
            else:
                self._reply(HTTPStatus.NOT_FOUND, {"error": "no such endpoint"})
                return
            status = HTTPStatus.OK if ok else HTTPStatus.SERVICE_UNAVAILABLE
            self._reply(status, body)

        def _reply(self, status: HTTPStatus, body: dict[str, Any]) -> None:
            payload = orjson.dumps(body)
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: Any) -> None:
            # Probes arrive every few seconds: keep them out of INFO logs.
            logger.debug("health request %s", format % args)

    return Handler
