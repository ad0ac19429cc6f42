"""Lookups the providers document and the emulators now serve, checked against the specs."""

from __future__ import annotations

import base64
from typing import Any

import aiohttp

from tests.harness import Harness
from tests.specs.conformance import spec_for


async def _get(harness: Harness, provider: str, path: str, headers: dict[str, str]) -> dict[str, Any]:
    running = harness.emulators[provider]
    async with aiohttp.ClientSession() as session, session.get(running.base_url + path, headers=headers) as resp:
        body = await resp.json()
        entry = {
            "method": "GET",
            "path": running.emulator.base_path + path,
            "response": {"status": resp.status, "headers": dict(resp.headers), "json": body},
        }
    assert resp.status == 200, body
    assert spec_for(provider).response_problems(entry) == []
    return body  # type: ignore[no-any-return]


async def test_capsule_current_user_and_parties(harness: Harness) -> None:
    auth = {"Authorization": "Bearer capsule-personal-token", "Accept": "application/json"}
    user = (await _get(harness, "capsule", "/users/current", auth))["user"]
    users = (await _get(harness, "capsule", "/users", auth))["users"]
    assert user["id"] == users[0]["id"] and user["username"]
    parties = (await _get(harness, "capsule", "/parties?perPage=5", auth))["parties"]
    assert len(parties) == 5 and {p["type"] for p in parties} <= {"person", "organisation"}


async def test_strawblond_current_user(harness: Harness) -> None:
    context = harness.emulators["strawblond"].context
    user = await _get(
        harness, "strawblond", "/user", {"Authorization": f"Bearer {context['api_key']}", "Accept": "application/json"}
    )
    assert user["id"] and user["name"]


async def test_pipeliner_currencies_say_which_is_base_and_rates_convert_from_it(harness: Harness) -> None:
    context = harness.emulators["pipeliner"].context
    token = base64.b64encode(f"{context['username']}:{context['password']}".encode()).decode()
    auth = {"Authorization": f"Basic {token}"}
    currencies = (await _get(harness, "pipeliner", "/entities/Currencies", auth))["data"]
    assert [c["code"] for c in currencies if c["is_base"]] == ["EUR"]
    rates = (await _get(harness, "pipeliner", "/entities/CurrencyExchangeRates", auth))["data"]
    lists = (await _get(harness, "pipeliner", "/entities/CurrencyExchangeRatesLists", auth))["data"]
    base = next(c["id"] for c in currencies if c["is_base"])
    assert rates and all(r["currency_id"] != base and r["exchange_rate"] > 0 for r in rates)
    assert {r["currency_exchange_rate_list_id"] for r in rates} <= {rl["id"] for rl in lists}
