"""End-to-end latency: Jira POST → card at a local Teams stand-in, through the real service.

Starts `ticketmate serve` (and, for the polling baseline, `serve --no-worker` beside a
separate `ticketmate worker` on SQLite, which nothing wakes) on a fresh database, sets up
channels through the service layer, warms the service with a few events, sends signed Jira
payloads on a fixed schedule (open loop) and reports how long each card took to arrive.

    .venv/bin/python -m bench.latency                       # SQLite, embedded worker
    .venv/bin/python -m bench.latency --database postgresql
    .venv/bin/python -m bench.latency --baseline-polling    # woken by polling only

Prints one line of figures; it never fails on a slow machine.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from typing import Any

import aiohttp

from bench import common
from ticketmate.dev.teams_sink import TeamsSink


def measure(
    database_kind: str, events: int, rate: float, channels: int, polling: bool
) -> dict[str, Any]:
    with common.fresh_database(database_kind) as database, TeamsSink() as sink:
        env = common.service_env(database)
        workspace = common.prepare_database(env)
        # One more channel takes the warm-up events: Teams' 4-per-second limit would hold
        # a measured channel's first cards behind ten warm-up cards for over a second.
        hooks = common.add_webhooks(
            database,
            workspace,
            [sink.url(f"/workflows/ch{c}") for c in range(channels)]
            + [sink.url("/workflows/warm-up")],
        )
        projects = [f"P{c}" for c in range(channels)] + ["WARM"]
        common.add_subscriptions(
            database,
            workspace,
            [
                (hook, "status_changed", {"projects": [project]})
                for project, hook in zip(projects, hooks, strict=True)
            ],
        )
        helpers: list[common.Process] = []
        if polling:
            helpers.append(common.worker(env, 64))
        process, base = common.serve(env, worker=not polling)
        helpers.append(process)
        arrivals: dict[str, float] = {}
        sink.on_receive = lambda r: arrivals.setdefault(
            r.json()["attachments"][0]["content"]["body"][2]["text"].split(":")[0], r.at
        )
        try:
            sent = asyncio.run(_drive(base, workspace, events, rate, channels))
            deadline = time.monotonic() + 30
            while len(arrivals) < len(sent) and time.monotonic() < deadline:
                time.sleep(0.05)
        finally:
            for helper in helpers:
                helper.stop()
    measured = [k for k in sent if not k.startswith("W")]
    latencies = sorted((arrivals[k] - sent[k]) * 1000 for k in measured if k in arrivals)
    q = statistics.quantiles(latencies, n=100) if len(latencies) > 1 else latencies * 99
    return {
        "events": events,
        "rate": rate,
        "channels": channels,
        "arrived": len(latencies),
        "p50_ms": round(q[49], 1),
        "p95_ms": round(q[94], 1),
        "p99_ms": round(q[98], 1),
        "max_ms": round(latencies[-1], 1) if latencies else None,
    }


async def _drive(
    base: str, workspace: common.Workspace, events: int, rate: float, channels: int
) -> dict[str, float]:
    async with aiohttp.ClientSession(base_url=base) as http:
        template: dict[str, Any] = json.loads(common.PAYLOAD.read_bytes())
        sent: dict[str, float] = {}

        async def one(key: str, raw: bytes) -> None:
            sent[key] = time.monotonic()
            async with http.post(
                f"/api/webhooks/jira?workspace={workspace.slug}",
                data=raw,
                headers={
                    "Content-Type": "application/json",
                    "X-Hub-Signature": common.signature(workspace.secret, raw),
                },
            ) as answer:
                answer.raise_for_status()

        # A cold process spends its first requests importing and compiling; ten events one
        # after another first, so the figures describe the service running, not starting.
        for n in range(10):
            template["issue"]["key"] = f"W{n}"
            template["issue"]["fields"]["project"]["key"] = "WARM"
            await one(f"W{n}", json.dumps(template).encode())
        await asyncio.sleep(1.0)
        tasks = []
        started = time.monotonic()
        for n in range(events):
            c = n % channels
            key = f"P{c}-{n}"
            template["issue"]["key"] = key
            template["issue"]["fields"]["project"]["key"] = f"P{c}"
            raw = json.dumps(template).encode()
            await asyncio.sleep(max(0.0, started + n / rate - time.monotonic()))
            tasks.append(asyncio.create_task(one(key, raw)))
        await asyncio.gather(*tasks)
        return sent


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--database", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--events", type=int, default=1500)
    parser.add_argument("--rate", type=float, default=50.0, help="events per second")
    parser.add_argument("--channels", type=int, default=20)
    parser.add_argument("--baseline-polling", action="store_true")
    args = parser.parse_args()
    found = measure(args.database, args.events, args.rate, args.channels, args.baseline_polling)
    mode = "polling only" if args.baseline_polling else "woken"
    print(f"{args.database:10} {mode:12} " + " ".join(f"{k}={v}" for k, v in found.items()))


if __name__ == "__main__":
    main()
