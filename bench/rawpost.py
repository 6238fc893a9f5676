"""The delivery ceiling: a raw aiohttp loop posting card bodies to the stand-in.

    python -m bench.rawpost BASE_URL BODIES_JSON CONCURRENCY

No database, no lanes, no rate limit: only the client work every delivery has to do, so
the worker's rate can be read against what this machine and this stand-in allow.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path

import aiohttp


async def run(base: str, bodies: list[list[str]], concurrency: int) -> dict[str, object]:
    queue = iter(bodies)
    failures = 0
    headers = {"Content-Type": "application/json"}
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as http:

        async def lane() -> None:
            nonlocal failures
            for path, body in queue:
                async with http.post(base + path, data=body.encode(), headers=headers) as answer:
                    await answer.read()
                    failures += answer.status != 202

        started = time.perf_counter()
        await asyncio.gather(*(lane() for _ in range(concurrency)))
        seconds = time.perf_counter() - started
    return {
        "requests": len(bodies),
        "seconds": round(seconds, 3),
        "per_s": round(len(bodies) / seconds, 1),
        "failures": failures,
    }


def main() -> None:
    base, bodies_file, concurrency = sys.argv[1], sys.argv[2], int(sys.argv[3])
    bodies = json.loads(Path(bodies_file).read_text())
    print(json.dumps(asyncio.run(run(base, bodies, concurrency))))


if __name__ == "__main__":
    main()
