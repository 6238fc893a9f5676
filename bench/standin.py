"""A fast Teams stand-in in its own process: answers 202 like a Workflows webhook and counts.

    python -m bench.standin --port 9000 [--tls CERT KEY]

It keeps, per request, only (path, hash of the body): enough to tell whether every card
arrived exactly once, cheap enough that the stand-in is never what limits a benchmark (the
raw aiohttp baseline measures it). GET /_stats answers the counts; POST /_reset clears them
(`?delay_ms=N` makes every answer after it wait N ms, as a slow Teams would).
"""

from __future__ import annotations

import argparse
import asyncio
import ssl
import time
from collections import Counter

from aiohttp import web


def build() -> web.Application:
    seen: Counter[tuple[str, int]] = Counter()
    state = {"received": 0, "first": 0.0, "last": 0.0, "delay": 0.0}

    async def receive(request: web.Request) -> web.Response:
        body = await request.read()
        if state["delay"]:
            # Teams takes its time to answer: with a delay, what a worker can send is bounded
            # by its requests in flight (the client side), not by the machine's cores.
            await asyncio.sleep(state["delay"])
        now = time.time()
        if not state["received"]:
            state["first"] = now
        state["received"] += 1
        state["last"] = now
        seen[(request.path, hash(body))] += 1
        return web.Response(status=202)

    async def stats(request: web.Request) -> web.Response:
        return web.json_response(
            {
                "received": state["received"],
                "distinct": len(seen),
                "duplicates": sum(n - 1 for n in seen.values() if n > 1),
                "paths": len({path for path, _ in seen}),
                "first": state["first"],
                "last": state["last"],
            }
        )

    async def reset(request: web.Request) -> web.Response:
        seen.clear()
        delay = float(request.query.get("delay_ms", "0")) / 1000
        state.update(received=0, first=0.0, last=0.0, delay=delay)
        return web.json_response({"ok": True})

    app = web.Application(client_max_size=4 * 1024 * 1024)
    app.router.add_get("/_stats", stats)
    app.router.add_post("/_reset", reset)
    app.router.add_post("/{tail:.*}", receive)
    return app


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--tls", nargs=2, metavar=("CERT", "KEY"))
    args = parser.parse_args()
    context = None
    if args.tls:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(*args.tls)
    try:
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    except ImportError:
        pass
    web.run_app(
        build(),
        host="127.0.0.1",
        port=args.port,
        ssl_context=context,
        access_log=None,
        print=None,
    )


if __name__ == "__main__":
    main()
