"""Delivery: pending deliveries drained by one real `ticketmate worker` to a local stand-in.

Setup (not measured): webhooks through the service layer, one subscription per channel, one
real event routed in-process by the service's own intake (so its 500 rows and its card are
exactly what the service makes), then copied in bulk for the other events, each copy with
its own issue key in the card. Measured: the worker process, from the first to the last
`delivered_at`. Baselines in the same run: a raw aiohttp loop at concurrency 64 posting the
same bodies to the same stand-in, and Apprise's `workflows://` sending one at a time over
https to a stand-in with a certificate made for this run.
"""

from __future__ import annotations

import datetime as dt
import json
import tempfile
import time
import urllib.request
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from bench import common
from bench.common import say


def stats(port: int, scheme: str = "http") -> dict[str, Any]:
    with urllib.request.urlopen(f"{scheme}://127.0.0.1:{port}/_stats", timeout=10) as r:  # noqa: S310
        found: dict[str, Any] = json.loads(r.read())
        return found


def reset(port: int, delay_ms: int = 0) -> None:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/_reset?delay_ms={delay_ms}", method="POST"
    )
    with urllib.request.urlopen(request, timeout=10):  # noqa: S310
        pass


def start_standin(tls: tuple[Path, Path] | None = None) -> tuple[common.Helper, int]:
    port = common.free_port()
    args = ["--port", str(port)]
    if tls:
        args += ["--tls", str(tls[0]), str(tls[1])]
    standin = common.Helper("standin", args, "standin")
    deadline = time.monotonic() + 20
    while True:
        standin.check_alive()
        try:
            if not tls:
                stats(port)
            else:
                import socket

                socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return standin, port
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def fill(database: str, channels: int, events: int, standin_port: int) -> list[str]:
    """`events` × `channels` pending deliveries; answers the card bodies of one event."""
    from fastapi.testclient import TestClient
    from sqlalchemy import insert, select

    from ticketmate.app import create_app
    from ticketmate.ids import new_id
    from ticketmate.models import IntegrationDelivery, JiraEventRecord

    env = common.service_env(database)
    workspace = common.prepare_database(env)
    hooks = common.add_webhooks(
        database,
        workspace,
        [f"http://127.0.0.1:{standin_port}/workflows/ch{n}" for n in range(channels)],
    )
    common.add_subscriptions(
        database,
        workspace,
        [(hook, "status_changed", {"projects": ["TES"]}) for hook in hooks],
    )
    svc = common.services(database)
    body = common.jira_body(key="TES-1000", long_card=True)
    # The one real event goes through the service's own intake, in process.
    with TestClient(create_app(svc.settings, services=svc)) as client:
        answered = client.post(
            f"/api/webhooks/jira?workspace={workspace.slug}",
            content=body,
            headers={
                "Content-Type": "application/json",
                "X-Hub-Signature": common.signature(workspace.secret, body),
                "X-Atlassian-Webhook-Identifier": "bench-0",
            },
        )
    assert answered.status_code == 202, answered.text
    answer = SimpleNamespace(**answered.json())
    assert answer.deliveries == channels, answer
    with svc.db.transaction() as session:
        event = (
            session.execute(
                select(JiraEventRecord.__table__).where(JiraEventRecord.id == answer.event_id)
            )
            .one()
            ._asdict()
        )
        rows = [
            r._asdict()
            for r in session.execute(
                select(IntegrationDelivery.__table__)
                .where(IntegrationDelivery.event_id == answer.event_id)
                .order_by(IntegrationDelivery.id)
            )
        ]
        bodies = [r["message"] for r in rows]
        for n in range(1, events):
            copy = dict(event, id=new_id(), jira_event_id=f"bench-{n}")
            session.execute(insert(JiraEventRecord.__table__), [copy])
            key = f"TES-{1000 + n}"
            session.execute(
                insert(IntegrationDelivery.__table__),
                [
                    dict(
                        r,
                        id=new_id(),
                        event_id=copy["id"],
                        issue_key=key,
                        message=r["message"].replace("TES-1000", key),
                    )
                    for r in rows
                ],
            )
    svc.db.dispose()
    return bodies


def drain(
    database: str,
    expected: int,
    standin_port: int,
    workers: int,
    rate: int,
    profile: bool,
    *,
    concurrency: int = 64,
    delay_ms: int = 0,
) -> dict[str, Any]:
    """Start the worker process(es), wait until every delivery is delivered, read the log."""
    import sqlalchemy

    from ticketmate.db import normalise_database_url

    env = common.service_env(database, TICKETMATE_CHANNEL_RATE_PER_SECOND=str(rate))
    reset(standin_port, delay_ms)
    processes = [common.worker(env, concurrency, f"worker{n}") for n in range(workers)]
    engine = sqlalchemy.create_engine(normalise_database_url(database))
    result: dict[str, Any] = {}
    # Started once the first card is delivered, so that the profile shows the steady state,
    # not the worker's imports and start-up.
    profiler: common.Profile | None = None
    try:
        last_count, last_change = -1, time.monotonic()
        while True:
            time.sleep(0.5)
            for process in processes:
                process.check_alive()
            with engine.connect() as c:
                count = int(
                    c.execute(
                        sqlalchemy.text(
                            "SELECT count(*) FROM integration_delivery_log "
                            "WHERE status = 'delivered'"
                        )
                    ).scalar_one()
                )
            if profile and profiler is None and count > 0:
                profiler = common.Profile(processes[0].pid, "delivery")
            if count >= expected:
                break
            if count != last_count:
                last_count, last_change = count, time.monotonic()
            elif time.monotonic() - last_change > 60:
                raise RuntimeError(f"delivery stalled at {count} of {expected}")
        if profiler:
            result["profile"] = str(profiler.finish().relative_to(common.ROOT))
        result["worker_mb"] = max(p.peak_rss_mb() for p in processes)
    finally:
        for process in processes:
            process.stop()
    with engine.connect() as c:
        first, last, statuses = c.execute(
            sqlalchemy.text(
                "SELECT min(delivered_at), max(delivered_at), count(DISTINCT status) "
                "FROM integration_delivery_log"
            )
        ).one()
    engine.dispose()
    if isinstance(first, str):  # SQLite answers text
        first, last = dt.datetime.fromisoformat(first), dt.datetime.fromisoformat(last)
    seconds = (last - first).total_seconds()
    seen = stats(standin_port)
    # Correctness, asserted: every delivery arrived at the stand-in, none of them twice.
    assert statuses == 1, "some deliveries did not end as delivered"
    assert seen["duplicates"] == 0, f"{seen['duplicates']} cards arrived twice"
    assert seen["distinct"] == expected, f"{seen['distinct']} of {expected} cards arrived"
    result.update(
        deliveries=expected, seconds=round(seconds, 3), per_s=round(expected / seconds, 2)
    )
    return result


def certificate(folder: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1, made for this run only."""
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = folder / "standin.pem", folder / "standin.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_file, key_file


def run(sizes: dict[str, Any], profile: bool) -> dict[str, Any]:
    channels, events = sizes["delivery_channels"], sizes["delivery_events"]
    expected = channels * events
    folder = Path(tempfile.mkdtemp(prefix="tm-bench-delivery-"))
    standin, port = start_standin()
    result: dict[str, Any] = {"database": "postgresql", "channels": channels, "events": events}
    try:
        with common.fresh_database("postgresql") as database:
            bodies = fill(database, channels, events, port)
            size = sum(len(b) for b in bodies) / len(bodies)
            say(
                f"delivery: {expected:,} pending ({events} events × {channels} channels, "
                f"~{size:,.0f}-byte cards; first event routed by the service, copies in bulk)"
            )
            lifted = drain(database, expected, port, 1, 100000, profile)
        say(f"worker, limit lifted: {lifted['per_s']:,.1f}/s")
        result.update(card_bytes=round(size), worker_mb=lifted["worker_mb"])
        if "profile" in lifted:
            result["profile"] = lifted["profile"]

        raw_file = folder / "bodies.json"
        raw_file.write_text(
            json.dumps(
                [
                    [f"/workflows/ch{n % channels}", bodies[n % channels]]
                    for n in range(min(expected, sizes["raw_requests"]))
                ]
            )
        )
        reset(port)
        raw = common.run_helper("rawpost", [f"http://127.0.0.1:{port}", str(raw_file), "64"])
        say(f"raw aiohttp at concurrency 64: {raw['per_s']:,.0f}/s")

        default_channels, default_events = channels, sizes["default_limit_events"]
        with common.fresh_database("postgresql") as database:
            fill(database, default_channels, default_events, port)
            default = drain(database, default_channels * default_events, port, 1, 4, False)
        allowed = default_channels * 4
        say(f"worker, default 4/s per channel: {default['per_s']:,.1f}/s of {allowed:,}/s allowed")
    finally:
        standin.stop()

    cert, key = certificate(folder)
    tls_standin, tls_port = start_standin((cert, key))
    try:
        apprise = common.run_helper(
            "apprise_send",
            [str(tls_port), str(sizes["apprise_messages"]), str(channels), bodies[0]],
            REQUESTS_CA_BUNDLE=str(cert),
        )
    finally:
        tls_standin.stop()
    say(f"Apprise workflows://, one at a time: {apprise['per_s']:,.1f}/s")
    result.update(
        {
            "deliveries": expected,
            "cards_per_s": lifted["per_s"],
            "drain_seconds": lifted["seconds"],
            "raw_per_s": raw["per_s"],
            "raw_requests": raw["requests"],
            "apprise_per_s": apprise["per_s"],
            "apprise_messages": apprise["sent"],
            "ratio_raw": common.ratio(lifted["per_s"], raw["per_s"]),
            "ratio_apprise": common.ratio(lifted["per_s"], apprise["per_s"]),
            "cards_per_s_default_limit": default["per_s"],
            "default_limit_deliveries": default["deliveries"],
            "default_limit_allowed_per_s": allowed,
            "ratio_default_limit_to_allowed": common.ratio(default["per_s"], allowed),
        }
    )
    return result


# The client-limited scaling run: each worker has 8 requests in flight at most and Teams takes
# 100 ms to answer, so one worker can send about 80 cards a second whatever the machine. A
# second worker should then double it, if the lanes are shared out between them. 48 channels
# of 20 cards: six rounds of eight lanes for one worker, three for two (no half-empty last
# round to blur the ratio).
CLIENT_LIMITED = {"concurrency": 8, "delay_ms": 100, "channels": 48, "events": 20}


def two_workers(sizes: dict[str, Any]) -> dict[str, Any]:
    """Scaling: the same drain with one and with two worker processes on PostgreSQL, once
    with an instant stand-in (the machine is the limit: workers, PostgreSQL and the stand-in
    share two cores) and once with a slow one (each worker's requests in flight are)."""
    channels, events = sizes["scaling_channels"], sizes["scaling_events"]
    slow_channels = CLIENT_LIMITED["channels"]
    slow_events = CLIENT_LIMITED["events"]
    standin, port = start_standin()
    found: dict[str, Any] = {}
    slow: dict[str, Any] = {}
    try:
        for workers in (1, 2):
            with common.fresh_database("postgresql") as database:
                fill(database, channels, events, port)
                found[workers] = drain(database, channels * events, port, workers, 100000, False)
            say(f"{workers} worker(s): {found[workers]['per_s']:,.1f}/s, each card exactly once")
        for workers in (1, 2):
            with common.fresh_database("postgresql") as database:
                fill(database, slow_channels, slow_events, port)
                slow[workers] = drain(
                    database,
                    slow_channels * slow_events,
                    port,
                    workers,
                    100000,
                    False,
                    concurrency=CLIENT_LIMITED["concurrency"],
                    delay_ms=CLIENT_LIMITED["delay_ms"],
                )
            say(
                f"{workers} worker(s), {CLIENT_LIMITED['concurrency']} in flight each, Teams "
                f"answering in {CLIENT_LIMITED['delay_ms']} ms: {slow[workers]['per_s']:,.1f}/s"
            )
    finally:
        standin.stop()
    return {
        "deliveries": channels * events,
        "one_worker_per_s": found[1]["per_s"],
        "two_workers_per_s": found[2]["per_s"],
        "two_workers_ratio": common.ratio(found[2]["per_s"], found[1]["per_s"]),
        "client_limited_deliveries": slow_channels * slow_events,
        "client_limited_concurrency": CLIENT_LIMITED["concurrency"],
        "client_limited_delay_ms": CLIENT_LIMITED["delay_ms"],
        "client_limited_one_worker_per_s": slow[1]["per_s"],
        "client_limited_two_workers_per_s": slow[2]["per_s"],
        "client_limited_two_workers_ratio": common.ratio(slow[2]["per_s"], slow[1]["per_s"]),
    }
