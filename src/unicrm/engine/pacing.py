"""A stream's provider requests paced by the provider's own rate-limit headers.

A `truto_response_format=stream` export makes one provider request per page, for as long as
the data lasts. The `Pacer` reads each answer's rate-limit state (through the declaration's
header names, so the engine knows no provider): when the window is used up it holds the next
request until the window resets, and when the provider answers 429 anyway it waits what the
provider asked for (`Retry-After`, else the reset time; a doubling back-off when it says
nothing) and sends the same page request again. It never waits longer than `max_wait_s` in
total for one page: past that it gives up with a 429 `ApiError`, and the stream ends with an
error line carrying the cursor of that page.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from unicrm.engine.calls import RateLimitState
from unicrm.engine.errors import ApiError

T = TypeVar("T")
DEFAULT_MAX_WAIT_S = 60.0
# Added to a reset moment: reset headers are often whole seconds, and being a hair early
# costs a 429 and a back-off.
RESET_MARGIN_S = 0.05
# The wait after a 429 that says nothing, and the least wait after one that does; both double
# with each further 429 on the same page, so an early or missing reset never turns into a
# burst of refused requests (which some providers punish).
FIRST_BACKOFF_S = 1.0
MIN_WAIT_AFTER_429_S = 0.25


class Pacer:
    """Spaces one stream's page requests; one instance per stream."""

    def __init__(
        self,
        label: str,
        max_wait_s: float = DEFAULT_MAX_WAIT_S,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.label = label
        self.max_wait_s = max_wait_s
        self._sleep = sleep
        self._clock = clock
        self._not_before = 0.0
        #: seconds spent waiting and 429s met over the whole stream (for logs and benchmarks)
        self.waited_s = 0.0
        self.rate_limited = 0

    def observe(self, state: RateLimitState) -> None:
        """Read one successful answer: an exhausted window holds the next request until its reset."""
        if state.remaining is not None and state.remaining <= 0 and state.reset_s is not None:
            self._not_before = max(self._not_before, self._clock() + max(0.0, state.reset_s) + RESET_MARGIN_S)

    async def run(self, send: Callable[[], Awaitable[T]], state_of: Callable[[T], RateLimitState]) -> T:
        """`send()` (one page request) at the earliest moment the provider's limits allow."""
        waited = 0.0
        refused = 0
        while True:
            delay = self._not_before - self._clock()
            if delay > 0:
                if waited + delay > self.max_wait_s:
                    raise self._exhausted(waited + delay)
                await self._sleep(delay)
                waited += delay
                self.waited_s += delay
            try:
                result = await send()
            except ApiError as exc:
                if exc.status != 429 or not exc.remote:
                    raise
                self.rate_limited += 1
                refused += 1
                step = 2.0 ** (refused - 1)
                asked = exc.retry_after_s
                wait = FIRST_BACKOFF_S * step if asked is None else max(asked + RESET_MARGIN_S, MIN_WAIT_AFTER_429_S * step)
                if waited + wait > self.max_wait_s:
                    raise exc from None
                self._not_before = max(self._not_before, self._clock() + wait)
                continue
            self.observe(state_of(result))
            return result

    def _exhausted(self, needed: float) -> ApiError:
        return ApiError(
            429,
            f"{self.label}'s rate limit for this account is used up and resets in {needed:.0f} s, "
            f"longer than this server waits for one page ({self.max_wait_s:g} s).",
            remote=True,
            headers={"Retry-After": str(max(1, int(needed + 0.999)))},
            insight={"rate_limit_error": {"description": f"{self.label} is rate limiting this account"}},
        )
