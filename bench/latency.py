"""End-to-end latency: Jira POST → card at a local Teams stand-in, through the real service.

Starts `ticketmate serve` (and, for the polling baseline, a separate `ticketmate worker`) on a
fresh database, configures channels through the API, sends signed Jira payloads at a steady
rate and reports how long each card took to arrive at the stand-in.

    .venv/bin/python bench/latency.py                       # SQLite, embedded worker
    .venv/bin/python bench/latency.py --database postgresql://postgres@127.0.0.1:5432/postgres
    .venv/bin/python bench/latency.py --baseline-polling    # worker woken by polling only

Prints one line of figures; it never fails on a slow machine.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx2

from ticketmate.dev.teams_sink import TeamsSink
from ticketmate.jira.signature import body_signature

ROOT = Path(__file__).resolve().parents[1]
PAYLOADS = ROOT / "tests" / "fixtures" / "jira-payloads"
PAYLOAD = (
    PAYLOADS / "mattermost_mattermost-plugin-jira__issue-updated-status-todo-to-inprogress.json"
)
TICKETMATE = str(Path(sys.executable).with_name("ticketmate"))
KEY = "bench:QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVowMTIzNDU="


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def fresh_database(url: str | None, folder: Path) -> str:
    if url is None:
        return f"sqlite:///{folder / 'bench.db'}"
    import sqlalchemy

    from ticketmate.db import normalise_database_url

    name = f"tm_bench_{secrets.token_hex(4)}"
    engine = sqlalchemy.create_engine(normalise_database_url(url), isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(sqlalchemy.text(f'CREATE DATABASE "{name}"'))
    engine.dispose()
    return url.rsplit("/", 1)[0] + "/" + name


def drop_database(url: str) -> None:
    import sqlalchemy

    from ticketmate.db import normalise_database_url

    server, name = url.rsplit("/", 1)
    engine = sqlalchemy.create_engine(
        normalise_database_url(server + "/postgres"), isolation_level="AUTOCOMMIT"
    )
    with engine.connect() as conn:
        conn.execute(sqlalchemy.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    engine.dispose()


def run(cmd: list[str], env: dict[str, str], cwd: Path) -> str:
    return subprocess.run(cmd, env=env, cwd=cwd, check=True, capture_output=True, text=True).stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database", help="a PostgreSQL server URL (default: SQLite)")
    parser.add_argument("--events", type=int, default=300)
    parser.add_argument("--rate", type=float, default=30.0, help="events per second")
    parser.add_argument("--channels", type=int, default=10)
    parser.add_argument("--baseline-polling", action="store_true")
    args = parser.parse_args()

    folder = Path(tempfile.mkdtemp(prefix="tm-bench-"))
    database = fresh_database(args.database, folder)
    env = {k: v for k, v in os.environ.items() if not k.startswith("TICKETMATE_")}
    port = free_port()
    env.update(
        TICKETMATE_DATABASE_URL=database,
        TICKETMATE_ENCRYPTION_KEYS=KEY,
        TICKETMATE_ALLOW_LOOPBACK_WEBHOOKS="true",
        TICKETMATE_LOG_LEVEL="WARNING",
    )
    run([TICKETMATE, "db", "upgrade"], env, folder)
    workspace = json.loads(run([TICKETMATE, "workspace", "create", "bench", "--json"], env, folder))
    subprocess.run(
        [
            TICKETMATE,
            "user",
            "create",
            "b@example.com",
            "--workspace",
            "bench",
            "--role",
            "admin",
            "--password-stdin",
        ],
        env=env,
        cwd=folder,
        input="benchmark-pass\n",
        check=True,
        capture_output=True,
        text=True,
    )
    token = (
        run([TICKETMATE, "token", "create", "b@example.com"], env, folder).strip().splitlines()[-1]
    )

    serve_args = [TICKETMATE, "serve", "--port", str(port)]
    processes = []
    if args.baseline_polling:
        serve_args.append("--no-worker")
        processes.append(
            subprocess.Popen(
                [TICKETMATE, "worker"],
                env=env,
                cwd=folder,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )
    processes.append(
        subprocess.Popen(
            serve_args, env=env, cwd=folder, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
    )
    base = f"http://127.0.0.1:{port}"
    arrivals: dict[str, float] = {}
    try:
        with TeamsSink() as sink, httpx2.Client(base_url=base, timeout=10) as http:
            sink.on_receive = lambda r: arrivals.setdefault(
                r.json()["attachments"][0]["content"]["body"][2]["text"].split(":")[0], r.at
            )
            for _ in range(100):
                try:
                    if http.get("/healthz").status_code == 200:
                        break
                except httpx2.TransportError:
                    time.sleep(0.1)
            auth = {"Authorization": f"Bearer {token}"}
            for c in range(args.channels):
                hook = http.post(
                    "/api/v1/workspaces/bench/teams/webhooks",
                    headers=auth,
                    json={"channel_name": f"ch{c}", "url": sink.url(f"/workflows/ch{c}")},
                )
                hook.raise_for_status()
                http.post(
                    "/api/v1/workspaces/bench/teams/subscriptions",
                    headers=auth,
                    json={
                        "event_type": "status_changed",
                        "webhook_id": hook.json()["id"],
                        "filters": {"projects": [f"P{c}"]},
                    },
                ).raise_for_status()
            template: dict[str, Any] = json.loads(PAYLOAD.read_bytes())
            sent: dict[str, float] = {}
            started = time.monotonic()
            for n in range(args.events):
                c = n % args.channels
                key = f"P{c}-{n}"
                body = json.loads(json.dumps(template))
                body["issue"]["key"] = key
                body["issue"]["fields"]["project"]["key"] = f"P{c}"
                raw = json.dumps(body).encode()
                due = started + n / args.rate
                time.sleep(max(0.0, due - time.monotonic()))
                sent[key] = time.monotonic()
                http.post(
                    "/api/webhooks/jira?workspace=bench",
                    content=raw,
                    headers={
                        "Content-Type": "application/json",
                        "X-Hub-Signature": body_signature(workspace["jira_secret"], raw),
                    },
                ).raise_for_status()
            deadline = time.monotonic() + 30
            while len(arrivals) < args.events and time.monotonic() < deadline:
                time.sleep(0.05)
    finally:
        for process in processes:
            process.terminate()
            process.wait(20)
        if args.database:
            drop_database(database)
    latencies = sorted((arrivals[k] - sent[k]) * 1000 for k in sent if k in arrivals)
    if not latencies:
        print("no card arrived")
        return
    q = statistics.quantiles(latencies, n=100)
    kind = "postgresql" if args.database else "sqlite"
    mode = "polling only" if args.baseline_polling else "woken"
    print(
        f"{kind:10} {mode:12} events={args.events} rate={args.rate:g}/s arrived={len(latencies)} "
        f"p50={q[49]:.1f}ms p95={q[94]:.1f}ms p99={q[98]:.1f}ms max={latencies[-1]:.1f}ms"
    )


if __name__ == "__main__":
    main()
