#!/usr/bin/env python3
"""Container health check: exit 0 when the flow's readiness endpoint says ready.

Docker runs this inside the container; the port is the one the flow serves its
health endpoints on (``FRAUDFLOW_HEALTH_PORT``, 8080 by default).
"""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request


def main() -> int:
    """Ask ``/readyz`` on the loopback interface; 0 when it answers 200."""
    port = os.environ.get("FRAUDFLOW_HEALTH_PORT", "8080")
    url = f"http://127.0.0.1:{port}/readyz"
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            status = response.status
    except (urllib.error.URLError, OSError) as exc:
        print(f"not ready: {url}: {exc}", file=sys.stderr)
        return 1
    return 0 if status == 200 else 1


if __name__ == "__main__":
    sys.exit(main())
