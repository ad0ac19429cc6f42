"""Creates under upstream faults: how many are lost or duplicated when clients retry on the same key.

Starts `unicrm emulate` and `unicrm serve` (subprocesses, loopback), tells every emulator to
fault 20% of its requests (by default 10% HTTP 500 before handling, 5% connection dropped
before handling, 5% handled and then the answer lost), and runs N creates per provider, each
with a unique name, as a careful client does (docs/writes-and-faults.md):

- a 5xx/429/409 without `write_outcome_unknown`: retry with the same Idempotency-Key;
- `write_outcome_unknown` (or its replay): look for the project by name; if it is there the
  create is done, if not, send it again under a new key;
- `write_happened` or 201: done.

Then faults stop and every project is counted by name: 0 is a lost create, >1 a duplicate.
Goal: 0 lost, 0 duplicated.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _support import closing_all, machine, start_emulators, start_server

from unicrm.cli import example_body

ALL = ["capsule", "insightly", "pipeliner", "planhat", "strawblond", "teamleader", "wethod"]
RETRY_STATUSES = {409, 429, 500, 502, 503, 504}


class Client:
    def __init__(self, session: aiohttp.ClientSession, base_url: str, token: str, account: str) -> None:
        self.session = session
        self.base_url = base_url
        self.headers = {"Authorization": f"Bearer {token}"}
        self.account = account
        self.stats: Counter[str] = Counter()

    async def post(self, body: dict[str, Any], key: str) -> tuple[int, dict[str, Any], bool]:
        url = f"{self.base_url}/unified/crm/projects?integrated_account_id={self.account}"
        async with self.session.post(url, json=body, headers={**self.headers, "Idempotency-Key": key}) as resp:
            data = await resp.json(content_type=None)
            return resp.status, data if isinstance(data, dict) else {}, resp.headers.get("idempotent-replayed") == "true"

    async def names(self) -> Counter[str]:
        """Every project's name, all pages (reads retried until they answer)."""
        counts: Counter[str] = Counter()
        cursor = None
        while True:
            query = f"integrated_account_id={self.account}&limit=100&truto_ignore_remote_data=true"
            if cursor:
                query += f"&next_cursor={cursor}"
            for attempt in range(20):
                async with self.session.get(f"{self.base_url}/unified/crm/projects?{query}", headers=self.headers) as resp:
                    if resp.status == 200:
                        page = await resp.json()
                        break
                self.stats["read_retries"] += 1
                await asyncio.sleep(0.05 * (attempt + 1))
            else:
                raise RuntimeError("list kept failing")
            counts.update(r.get("name") for r in page["result"])
            cursor = page["next_cursor"]
            if not cursor:
                return counts

    async def create(self, body: dict[str, Any]) -> None:
        key = uuid.uuid4().hex
        for attempt in range(40):
            status, data, replayed = await self.post(body, key)
            self.stats["posts"] += 1
            self.stats["replays"] += replayed
            insight = data.get("truto_error_insight") or {}
            if status == 201 or "write_happened" in insight:
                self.stats["written_with_error" if status != 201 else "created"] += 1
                return
            if "write_outcome_unknown" in insight:
                self.stats["unknown_outcomes"] += 1
                if (await self.names())[body["name"]]:
                    self.stats["settled_found"] += 1
                    return
                self.stats["settled_absent"] += 1
                key = uuid.uuid4().hex
                continue
            if status in RETRY_STATUSES:
                self.stats[f"retry_{status}"] += 1
                await asyncio.sleep(min(0.02 * (attempt + 1), 0.3))
                continue
            raise RuntimeError(f"create answered {status}: {data}")
        self.stats["gave_up"] += 1


async def run(args: argparse.Namespace) -> int:
    print(f"writes under faults: {machine()}")
    faults = {"error_rate": args.error_rate, "drop_rate": args.drop_rate, "lose_answer_rate": args.lose_rate}
    print(f"faults per upstream request: {faults}; {args.creates} creates per provider, concurrency {args.concurrency}")
    emulators = start_emulators(args.providers)
    server = start_server(allow_origins=emulators.origins)
    total_lost = total_dup = 0
    with closing_all(emulators, server):
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=120)) as session:
            for provider in args.providers:
                account = server.create_account(provider, emulators.running[provider]["context"])
                client = Client(session, server.base_url, server.token, account)
                template = await example_body(server.base_url, server.token, provider, account)
                if template is None:
                    raise RuntimeError(f"{provider}: no sample project to copy required fields from")
                control = "/".join(str(emulators.running[provider]["base_url"]).split("/", 3)[:3]) + "/_emulator/faults"
                async with session.post(control, json=faults) as resp:
                    assert resp.status == 200
                names = [f"fault-bench {provider} {i} {uuid.uuid4().hex[:6]}" for i in range(args.creates)]
                queue: asyncio.Queue[str] = asyncio.Queue()
                for name in names:
                    queue.put_nowait(name)

                async def worker(
                    client: Client = client, template: dict[str, Any] = template, queue: asyncio.Queue[str] = queue
                ) -> None:
                    while not queue.empty():
                        name = queue.get_nowait()
                        await client.create({**template, "name": name})

                began = time.monotonic()
                await asyncio.gather(*(worker() for _ in range(args.concurrency)))
                elapsed = time.monotonic() - began
                async with session.post(control, json={"error_rate": 0, "drop_rate": 0, "lose_answer_rate": 0}) as resp:
                    assert resp.status == 200
                counts = await client.names()
                lost = sum(1 for n in names if counts[n] == 0)
                dup = sum(1 for n in names if counts[n] > 1)
                total_lost += lost
                total_dup += dup
                s = client.stats
                print(
                    f"{provider:11s} creates {len(names)}  lost {lost}  duplicated {dup}  "
                    f"posts {s['posts']} replays {s['replays']} unknown {s['unknown_outcomes']} "
                    f"(found {s['settled_found']}, absent {s['settled_absent']}) written-with-error {s['written_with_error']} "
                    f"retries 502 {s['retry_502']} 504 {s['retry_504']} 409 {s['retry_409']} gave-up {s['gave_up']}  {elapsed:.1f} s"
                )
    print(f"TOTAL lost {total_lost} duplicated {total_dup} (goal 0 and 0)")
    return 0 if total_lost == 0 and total_dup == 0 else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--providers", nargs="*", default=ALL)
    parser.add_argument("--creates", type=int, default=100, help="creates per provider")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--error-rate", type=float, default=0.10, help="HTTP 500 before handling")
    parser.add_argument("--drop-rate", type=float, default=0.05, help="connection dropped before handling")
    parser.add_argument("--lose-rate", type=float, default=0.05, help="handled, then the answer lost")
    parser.add_argument("--quick", action="store_true", help="20 creates per provider")
    args = parser.parse_args()
    if args.quick:
        args.creates = 20
    return asyncio.run(run(args))


if __name__ == "__main__":
    raise SystemExit(main())
