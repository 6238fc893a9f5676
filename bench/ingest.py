"""Ingest: signed Jira webhooks into the real `ticketmate serve`, beside a bare FastAPI app.

The workspace holds 1,000 subscriptions on 200 webhooks; each event matches 5 of them (the
others differ by project or priority), so every accepted event routes 5 deliveries. `wrk`
drives 32 connections for a fixed time (closed loop); then an open-loop generator sends at
half the measured rate to see the latency a server has when it is not saturated.
"""

from __future__ import annotations

import json
import secrets
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from bench import common
from bench.common import say


def subscription_rows(
    hooks: list[str], total: int, matching: int
) -> list[tuple[str, str, dict[str, list[str]]]]:
    """`matching` subscriptions on distinct webhooks that the event passes; the rest fail on
    project or on priority, so the router has to look at every one."""
    rows = []
    for n in range(total):
        hook = hooks[n % len(hooks)]
        if n < matching:
            filters = {"projects": ["TES"], "priorities": ["High"]}
        elif n % 2:
            filters = {"projects": [f"OTHER{n}"]}
        else:
            filters = {"projects": ["TES"], "priorities": ["Low"]}
        rows.append((hook, "status_changed", filters))
    return rows


def setup(database: str, webhooks: int, subscriptions: int) -> common.Workspace:
    env = common.service_env(database)
    workspace = common.prepare_database(env)
    hooks = common.add_webhooks(
        database,
        workspace,
        [f"http://127.0.0.1:9/workflows/ingest-{n}" for n in range(webhooks)],
    )
    common.add_subscriptions(database, workspace, subscription_rows(hooks, subscriptions, 5))
    return workspace


def wrk(url: str, body_file: Path, sig: str, connections: int, seconds: float) -> dict[str, Any]:
    script = common.ROOT / "bench" / "ingest.lua"
    done = subprocess.run(
        [
            "wrk",
            "-t1",
            f"-c{connections}",
            f"-d{seconds:g}s",
            "--timeout",
            "60s",
            "-s",
            str(script),
            url,
        ],
        env={
            "BENCH_BODY_FILE": str(body_file),
            "BENCH_SIGNATURE": sig,
            "BENCH_RUN": secrets.token_hex(4),
            "PATH": "/usr/bin:/bin",
        },
        capture_output=True,
        text=True,
        check=True,
    )
    line = [x for x in done.stdout.splitlines() if x.startswith("{")][-1]
    found: dict[str, Any] = json.loads(line)
    found["per_s"] = found["requests"] / (found["duration_us"] / 1e6)
    return found


def run(sizes: dict[str, Any], profile: bool) -> dict[str, Any]:
    seconds = sizes["ingest_seconds"]
    folder = Path(tempfile.mkdtemp(prefix="tm-bench-ingest-"))
    body = common.jira_body()
    body_file = folder / "body.json"
    body_file.write_bytes(body)
    say(f"ingest: {len(body):,}-byte issue_updated bodies, 32 connections, {seconds:g}s each")

    port = common.free_port()
    bare = common.Helper("bare", ["--port", str(port)], "bare")
    try:
        common.wait_http(f"http://127.0.0.1:{port}/healthz", bare)
        bare_run = wrk(f"http://127.0.0.1:{port}/api/webhooks/jira", body_file, "x", 32, seconds)
    finally:
        bare.stop()
    say(f"bare FastAPI: {bare_run['per_s']:,.0f}/s")

    result: dict[str, Any] = {}
    with common.fresh_database(sizes["database"]) as database:
        workspace = setup(database, 200, 1000)
        say("setup: 200 webhooks through the service layer, 1,000 subscriptions in bulk")
        sig = common.signature(workspace.secret, body)
        process, base = common.serve(common.service_env(database))
        url = f"{base}/api/webhooks/jira?workspace={workspace.slug}"
        try:
            profiler = common.Profile(process.pid, "ingest") if profile else None
            measured = wrk(url, body_file, sig, 32, seconds)
            if profiler:
                result["profile"] = str(profiler.finish().relative_to(common.ROOT))
            process.check_alive()
            half = max(1.0, measured["per_s"] / 2)
            say(f"service: {measured['per_s']:,.1f}/s; open loop at {half:,.1f}/s")
            open_loop = common.run_helper(
                "openloop",
                [
                    url,
                    str(body_file),
                    sig,
                    secrets.token_hex(4),
                    "--rate",
                    f"{half:.3f}",
                    "--seconds",
                    f"{seconds:g}",
                ],
            )
            result["web_mb"] = process.peak_rss_mb()
        finally:
            process.stop()
    result.update(
        {
            "database": sizes["database"],
            "subscriptions": 1000,
            "webhooks": 200,
            "matching_per_event": 5,
            "body_bytes": len(body),
            "connections": 32,
            "seconds": seconds,
            "events_per_s": round(measured["per_s"], 2),
            "bare_per_s": round(bare_run["per_s"], 1),
            "ratio": common.ratio(measured["per_s"], bare_run["per_s"]),
            "p50_ms": round(measured["p50_us"] / 1000, 2),
            "p99_ms": round(measured["p99_us"] / 1000, 2),
            "bare_p50_ms": round(bare_run["p50_us"] / 1000, 2),
            "bare_p99_ms": round(bare_run["p99_us"] / 1000, 2),
            "non_2xx": measured["non_2xx"] + measured["socket_errors"],
            "half_rate_per_s": open_loop["rate"],
            "p50_ms_at_half_rate": open_loop["p50_ms"],
            "p99_ms_at_half_rate": open_loop["p99_ms"],
            "non_2xx_at_half_rate": open_loop["non_2xx"],
        }
    )
    return result


def p50_at_one_connection(database: str, subscriptions: int, seconds: float) -> float:
    """For scaling: ingest p50 with one connection, `subscriptions` in the workspace."""
    workspace = setup(database, max(5, min(200, subscriptions // 5)), subscriptions)
    body = common.jira_body()
    folder = Path(tempfile.mkdtemp(prefix="tm-bench-scale-"))
    (folder / "body.json").write_bytes(body)
    process, base = common.serve(common.service_env(database))
    try:
        measured = wrk(
            f"{base}/api/webhooks/jira?workspace={workspace.slug}",
            folder / "body.json",
            common.signature(workspace.secret, body),
            1,
            seconds,
        )
    finally:
        process.stop()
    return round(measured["p50_us"] / 1000, 2)
