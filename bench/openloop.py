"""An open-loop load generator in its own process: requests leave on a fixed schedule.

    python -m bench.openloop URL BODY_FILE SIGNATURE RUN --rate 5 --seconds 10

Each request is sent at its planned time whether or not earlier ones have been answered, and
its latency is measured from that planned time, so a slow server cannot hide its queue
(no coordinated omission). Prints one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from pathlib import Path

import aiohttp


async def run(args: argparse.Namespace) -> dict[str, object]:
    body = Path(args.body_file).read_bytes()
    latencies: list[float] = []
    statuses: list[int] = []
    total = int(args.rate * args.seconds)
    connector = aiohttp.TCPConnector(limit=0)
    timeout = aiohttp.ClientTimeout(total=120)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as http:

        async def one(n: int, planned: float) -> None:
            headers = {
                "Content-Type": "application/json",
                "X-Hub-Signature": args.signature,
                "X-Atlassian-Webhook-Identifier": f"{args.run}-{n}",
            }
            try:
                async with http.post(args.url, data=body, headers=headers) as answer:
                    await answer.read()
                    statuses.append(answer.status)
            except aiohttp.ClientError:
                statuses.append(0)
            latencies.append((time.monotonic() - planned) * 1000)

        started = time.monotonic() + 0.2
        tasks = []
        for n in range(total):
            planned = started + n / args.rate
            await asyncio.sleep(max(0.0, planned - time.monotonic()))
            tasks.append(asyncio.create_task(one(n, planned)))
        await asyncio.gather(*tasks)
    q = statistics.quantiles(latencies, n=100) if len(latencies) > 1 else latencies * 99
    return {
        "sent": total,
        "rate": args.rate,
        "p50_ms": round(q[49], 2),
        "p99_ms": round(q[98], 2),
        "non_2xx": sum(1 for s in statuses if not 200 <= s < 300),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("body_file")
    parser.add_argument("signature")
    parser.add_argument("run")
    parser.add_argument("--rate", type=float, required=True)
    parser.add_argument("--seconds", type=float, required=True)
    print(json.dumps(asyncio.run(run(parser.parse_args()))))


if __name__ == "__main__":
    main()
