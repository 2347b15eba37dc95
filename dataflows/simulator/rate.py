"""Pace a producer at a target rate, with optional periodic bursts.

A token bucket over small time slices: instead of sleeping once per message
(which costs more than producing it and drifts at high rates), the caller asks
:meth:`RateLimiter.acquire` how many messages it may send now, sends that
many, and asks again. Tokens follow an exact schedule: at ``t`` seconds after
the start, ``rate * t`` tokens have been granted, plus the extra tokens of
any burst periods so far. Tokens are handed out a slice (``slice_s`` worth)
at a time; a caller that falls behind may catch up by at most ``catch_up_s``
worth, and older backlog is forgiven, so a long stall does not turn into a
flood.

Example:
    >>> limiter = RateLimiter(rate=5000)
    >>> granted = limiter.acquire()  # blocks until at least one token is due
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Final

#: Messages granted at once when unthrottled: large enough to amortise the
#: call, small enough to keep progress and the clock checks lively.
UNTHROTTLED_GRANT: Final = 1024
#: Tolerance for float error in the schedule: a token due at exactly the
#: clock's reading must count as due, or the limiter would spin on it.
_ROUNDING: Final = 1e-6
#: Shortest sleep; the operating system will not wake sooner anyway.
_MIN_SLEEP_S: Final = 50e-6


class RateLimiter:
    """Grants messages on a schedule of ``rate`` per second plus bursts.

    Args:
        rate: Messages per second outside bursts; 0 means unthrottled.
        burst_every: Seconds between burst starts; 0 means no bursts. The
            first burst ends at ``burst_every`` seconds.
        burst_factor: Rate multiplier during a burst.
        burst_seconds: Length of each burst.
        slice_s: Seconds of tokens granted at once. Smaller slices pace more
            evenly but cost more wake-ups.
        catch_up_s: Seconds of backlog a late caller may still send (at least
            two slices); older backlog is forgiven. Larger values keep the
            average rate through pauses (a new batch of simulated time takes
            milliseconds to draw) at the cost of a larger burst after them.
        clock: Monotonic clock in seconds.
        sleep: Sleep function taking seconds.

    Raises:
        ValueError: for a negative rate or a burst that does not fit its period.
    """

    def __init__(
        self,
        rate: float,
        burst_every: float = 0.0,
        burst_factor: float = 1.0,
        burst_seconds: float = 1.0,
        slice_s: float = 0.005,
        catch_up_s: float = 0.1,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        """Check the schedule; it starts at the first :meth:`acquire`."""
        _check_schedule(rate, burst_every, burst_factor, burst_seconds)
        self.rate = rate
        self._every = burst_every
        self._factor = burst_factor
        self._burst = burst_seconds
        self._slice = slice_s
        self._catch_up = catch_up_s
        self._clock = clock
        self._sleep = sleep
        self._origin: float | None = None
        self.granted = 0

    def due(self, elapsed: float) -> float:
        """Return the tokens scheduled in the first ``elapsed`` seconds."""
        if not self._every:
            return self.rate * elapsed
        periods, into = divmod(elapsed, self._every)
        in_burst = periods * self._burst + max(0.0, into - (self._every - self._burst))
        return self.rate * (elapsed + (self._factor - 1) * in_burst)

    def current_rate(self, elapsed: float) -> float:
        """Return the scheduled rate at ``elapsed`` seconds."""
        into = elapsed % self._every if self._every else 0.0
        bursting = self._every and into >= self._every - self._burst
        return self.rate * (self._factor if bursting else 1.0)

    def acquire(self) -> int:
        """Wait until at least one message is due and return how many are.

        The caller should send exactly the returned number before calling
        again; the grant is counted as sent.
        """
        if not self.rate:
            self.granted += UNTHROTTLED_GRANT
            return UNTHROTTLED_GRANT
        if self._origin is None:
            self._origin = self._clock()
        while True:
            elapsed = self._clock() - self._origin
            rate = self.current_rate(elapsed)
            chunk = max(1, round(rate * self._slice))
            due = math.floor(self.due(elapsed) + _ROUNDING)
            backlog = max(2 * chunk, math.ceil(rate * self._catch_up))
            self.granted = max(self.granted, due - backlog)
            if due - self.granted >= chunk:
                grant, self.granted = due - self.granted, due
                return grant
            wait = (self.granted + chunk - self.due(elapsed)) / rate
            self._sleep(min(max(wait, _MIN_SLEEP_S), self._slice))


def _check_schedule(
    rate: float, burst_every: float, burst_factor: float, burst_seconds: float
) -> None:
    """Refuse a schedule the limiter cannot follow, naming the argument."""
    if rate < 0:
        raise ValueError(f"rate: expected >= 0 messages/s, got {rate!r}")
    if burst_every < 0 or burst_factor <= 0:
        detail = f"got burst_every={burst_every!r}, burst_factor={burst_factor!r}"
        raise ValueError(f"bursts: expected every >= 0 and factor > 0, {detail}")
    if burst_every and not 0 < burst_seconds < burst_every:
        detail = f"got {burst_seconds!r} every {burst_every!r}"
        raise ValueError(f"burst_seconds: expected 0 < length < period, {detail}")
