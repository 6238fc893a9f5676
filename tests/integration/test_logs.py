"""TICKETMATE_LOG_FORMAT=json: every line the real commands write is a JSON object; requests
carry an X-Request-ID into their answer and their log lines."""

from __future__ import annotations

import io
import json
import logging
import re
import socket
import sys
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx2
import pytest
from fastapi.testclient import TestClient

from tests.conftest import free_port, make_settings
from tests.jira.support import INTAKE, payload_bytes
from tests.support.processes import ServeProcess, WorkerProcess, cli_env, run_cli
from tests.support.teams import make_subscription, make_webhook
from ticketmate import logging_setup
from ticketmate.app import build_services, create_app
from ticketmate.logging_setup import configure_logging
from ticketmate.state import Services
from ticketmate.workspaces.service import get_by_slug, jira_credentials

JSON_LOGS = {"TICKETMATE_LOG_FORMAT": "json", "TICKETMATE_LOG_LEVEL": "INFO"}
RFC3339_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?Z$")
ISSUE_CREATED = "mattermost_mattermost-plugin-jira__issue-created.json"


def json_lines(output: str) -> list[dict[str, Any]]:
    """Every line of `output` as a JSON object with ts, level, logger and msg; fails otherwise."""
    lines = []
    for line in output.splitlines():
        try:
            parsed = json.loads(line)
        except ValueError:
            pytest.fail(f"not a JSON line: {line!r}\n{output}")
        assert isinstance(parsed, dict), line
        assert {"ts", "level", "logger", "msg"} <= parsed.keys(), line
        assert RFC3339_UTC.match(parsed["ts"]), line
        assert datetime.fromisoformat(parsed["ts"]).utcoffset() == UTC.utcoffset(None)
        lines.append(parsed)
    assert lines, "no output at all"
    return lines


def lines_of(lines: list[dict[str, Any]], logger: str, msg: str) -> list[dict[str, Any]]:
    return [line for line in lines if line["logger"] == logger and msg in line["msg"]]


@pytest.fixture
def fresh_database(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'logs.db'}"


def test_upgrade_serve_and_worker_write_only_json_lines(
    fresh_database: str, tmp_path: Path
) -> None:
    upgrade = run_cli(["db", "upgrade"], cli_env(fresh_database, **JSON_LOGS), tmp_path)
    assert upgrade.returncode == 0, upgrade.stderr
    lines = json_lines(upgrade.stdout + upgrade.stderr)
    assert lines_of(lines, "alembic.runtime.migration", "Running upgrade  -> 0001")
    assert lines_of(lines, "ticketmate.cli", "database is up to date")

    serve = ServeProcess(fresh_database, tmp_path, TICKETMATE_LOG_FORMAT="json")
    serve.env["TICKETMATE_LOG_LEVEL"] = "INFO"  # ServeProcess starts at WARNING
    with serve.start():
        given = httpx2.get(f"{serve.url}/healthz", headers={"X-Request-ID": "abc-123"})
        assert given.headers["X-Request-ID"] == "abc-123"
        malformed = httpx2.get(f"{serve.url}/healthz", headers={"X-Request-ID": "no good!"})
        made = malformed.headers["X-Request-ID"]
        assert re.fullmatch(r"[0-9a-f]{32}", made), made
        none = httpx2.get(f"{serve.url}/readyz")
        assert none.headers["X-Request-ID"] not in {"abc-123", made}
        # Bytes that are not HTTP: uvicorn's own warning line.
        with socket.create_connection(("127.0.0.1", serve.port), timeout=5) as raw:
            raw.sendall(b"NOT HTTP AT ALL\r\n\r\n")
            raw.recv(1024)
        event_id = send_an_event_routed_to_a_closed_port(fresh_database, tmp_path, serve.url)
        serve.stop()
    lines = json_lines(serve.output())
    first_run = lines_of(lines, "ticketmate.cli", "set up with a workspace 'demo'")
    assert first_run[0]["email"] == "admin@example.com"
    assert "password" not in first_run[0]  # no secret in a log line (tests/cli/test_first_run.py)
    assert lines_of(lines, "ticketmate.cli", f"Serving on {serve.url}")
    assert lines_of(lines, "uvicorn.error", "Started server process")
    assert lines_of(lines, "uvicorn.error", f"Uvicorn running on {serve.url}")
    assert lines_of(lines, "uvicorn.error", "Invalid HTTP request received")
    health = {line["request_id"] for line in lines_of(lines, "ticketmate.access", "GET /healthz")}
    assert {"abc-123", made} <= health
    stored = lines_of(lines, "ticketmate.jira.intake_writer", f"stored event {event_id}")
    assert stored[0]["event_id"] == event_id
    assert stored[0]["workspace"] == "demo"
    assert "request_id" not in stored[0]  # written by the intake writer, for many requests
    intake = lines_of(lines, "ticketmate.access", f"POST {INTAKE} 202")
    assert re.fullmatch(r"[0-9a-f]{32}", intake[0]["request_id"])

    with WorkerProcess(fresh_database, tmp_path, "--once", **JSON_LOGS).start() as worker:
        assert worker.process is not None
        assert worker.process.wait(timeout=60) == 0
    lines = json_lines(worker.output())
    failed = [line for line in lines if "delivery_id" in line]
    assert failed, lines
    assert "to webhook" in failed[0]["msg"]
    assert lines_of(lines, "ticketmate.cli", "stopped: 1 sent")


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        # fail() in a command
        (["keys", "generate", "--kid", "a:b"], {}, "a key id is 1-64 characters"),
        # fail() by cli_errors, for a setting the command reads
        (["db", "upgrade"], {"TICKETMATE_WORKER_POLL_SECONDS": "0"}, "TICKETMATE_WORKER_POLL"),
        # a wrong setting, reported in the chosen format although Settings cannot be read
        (["serve"], {"TICKETMATE_LOG_LEVEL": "LOUD"}, "TICKETMATE_LOG_LEVEL: must be one of"),
        # Click's own usage errors, which text format draws as a box
        (["--bogus"], {}, "No such option: --bogus; see `ticketmate --help`"),
        (["user", "create", "a@b.c"], {}, "Missing option '--workspace'; see `ticketmate user"),
    ],
)
def test_command_errors_are_one_json_line(
    fresh_database: str, tmp_path: Path, args: list[str], env: dict[str, str], message: str
) -> None:
    failed = run_cli(args, cli_env(fresh_database, **{**JSON_LOGS, **env}), tmp_path)
    assert failed.returncode in (1, 2), failed.stderr
    assert failed.stdout == ""
    lines = json_lines(failed.stderr)
    assert len(lines) == 1, failed.stderr
    assert lines[0]["level"] == "ERROR"
    assert lines[0]["logger"] == "ticketmate.cli"
    assert lines[0]["msg"].startswith(message), lines[0]
    assert "Traceback" not in failed.stderr


def send_an_event_routed_to_a_closed_port(database_url: str, tmp_path: Path, base: str) -> str:
    """POST a Jira event with the demo workspace's ingest token, routed to a webhook on a port
    nobody listens on; the id of the stored event."""
    svc = build_services(make_settings(database_url, tmp_path))
    try:
        with svc.db.transaction() as session:
            demo = get_by_slug(session, "demo")
            assert demo is not None
            demo_id, token = demo.id, jira_credentials(svc.keyring, demo).ingest_token
        hook = make_webhook(
            svc, demo_id, "eng", f"http://127.0.0.1:{free_port()}/workflows/eng1/triggers"
        )
        make_subscription(svc, demo_id, hook, "issue_created")
    finally:
        svc.db.dispose()
    answer = httpx2.post(
        f"{base}{INTAKE}",
        params={"workspace": "demo"},
        content=payload_bytes(ISSUE_CREATED),
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}"},
    )
    assert answer.status_code == 202, answer.text
    event_id: str = answer.json()["event_id"]
    return event_id


@pytest.fixture
def captured_logs() -> Iterator[io.StringIO]:
    root = logging.getLogger()
    saved = (root.handlers[:], root.level, sys.excepthook, threading.excepthook)
    uvicorn_access = logging.getLogger("uvicorn.access").disabled
    out = io.StringIO()
    configure_logging("INFO", "text", stream=out)
    yield out
    logging.captureWarnings(False)
    root.handlers[:], level, sys.excepthook, threading.excepthook = saved
    root.setLevel(level)
    logging.getLogger("uvicorn.access").disabled = uvicorn_access
    logging_setup._json_lines = False


def test_an_unhandled_error_answers_and_logs_with_the_request_id(
    svc: Services, captured_logs: io.StringIO
) -> None:
    app = create_app(svc.settings, services=svc)

    async def broken() -> None:
        raise RuntimeError("cannot post to https://x.webhook.office.com/webhookb2/a1@b2/c3?sig=S")

    app.add_api_route("/broken", broken)
    with TestClient(app, raise_server_exceptions=False) as client:
        answer = client.get("/broken", headers={"X-Request-ID": "req.7:tries-2"})
        assert answer.status_code == 500
        assert answer.headers["X-Request-ID"] == "req.7:tries-2"
        too_long = client.get("/healthz", headers={"X-Request-ID": "x" * 129})
        assert too_long.headers["X-Request-ID"] != "x" * 129
    written = captured_logs.getvalue()
    assert "ERROR ticketmate.errors [req=req.7:tries-2]: unhandled error on GET /broken" in written
    assert "INFO ticketmate.access [req=req.7:tries-2]: GET /broken 500" in written
    assert "RuntimeError: cannot post to https://x.webhook.office.com/[removed]" in written
    assert "a1@b2" not in written
