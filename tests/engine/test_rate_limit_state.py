"""Reading a provider's rate-limit state from its answer, through its declaration's header names."""

from __future__ import annotations

import time
from email.utils import formatdate

from multidict import CIMultiDict, CIMultiDictProxy

from unicrm.engine.calls import rate_limit_state, retry_after_seconds
from unicrm.outbound.http import ProviderResponse
from unicrm.providers import all_providers


def answer(status: int, headers: dict[str, str]) -> ProviderResponse:
    return ProviderResponse(status, CIMultiDictProxy(CIMultiDict(headers)), b"{}", "http://127.0.0.1/x")


def test_epoch_reset_and_remaining() -> None:
    state = rate_limit_state(
        all_providers()["capsule"],
        answer(200, {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": str(int(time.time()) + 30)}),
    )
    assert state.remaining == 0
    assert state.reset_s is not None and 28 < state.reset_s <= 30
    assert state.wait_s is None  # only a 429 asks for a wait


def test_datetime_reset_with_milliseconds_and_basic_offset() -> None:
    moment = time.gmtime(time.time() + 20)
    reset = time.strftime("%Y-%m-%dT%H:%M:%S.500+0000", moment)
    state = rate_limit_state(
        all_providers()["teamleader"], answer(429, {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": reset})
    )
    assert state.reset_s is not None and 18 < state.reset_s <= 21
    assert state.wait_s == state.reset_s  # no Retry-After: the reset is the wait


def test_retry_after_in_seconds_or_as_an_http_date() -> None:
    wethod = all_providers()["wethod"]
    assert rate_limit_state(wethod, answer(429, {"x-ratelimit-retry-after": "7"})).wait_s == 7.0
    strawblond = all_providers()["strawblond"]
    dated = rate_limit_state(strawblond, answer(429, {"Retry-After": formatdate(time.time() + 15, usegmt=True)}))
    assert dated.wait_s is not None and 13 < dated.wait_s <= 15
    assert retry_after_seconds(strawblond, answer(429, {"Retry-After": "2.2"})) == 3


def test_silence_and_garbage_say_nothing() -> None:
    planhat = all_providers()["planhat"]
    state = rate_limit_state(planhat, answer(429, {"X-Rate-Limit-Remaining": "lots"}))
    assert (state.remaining, state.reset_s, state.wait_s) == (None, None, None)
    assert retry_after_seconds(planhat, answer(429, {})) == 10
