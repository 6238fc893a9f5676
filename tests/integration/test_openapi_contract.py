"""The OpenAPI description tells the truth: `schemathesis run` over the real service.

`ticketmate serve` runs on the test database (each backend) and schemathesis, with all its
default checks, sends what the description allows (and what it does not) to every operation,
as a workspace administrator with an API token. Any answer the description does not list —
a status, a body shape, a header, a 5xx — fails the run, and the run's report is the message.

Examples are few (max-examples) and generation is deterministic, so the run takes seconds and
finds the same things on every machine.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.conftest import free_port
from tests.support.factories import bearer, make_user, make_workspace
from tests.support.processes import TICKETMATE, cli_env
from ticketmate.dev.teams_sink import TeamsSink
from ticketmate.state import Services

SCHEMATHESIS = str(Path(sys.executable).with_name("schemathesis"))
PAYLOAD = (
    Path(__file__).resolve().parents[1]
    / "fixtures"
    / "jira-payloads"
    / "mattermost_mattermost-plugin-jira__issue-created.json"
)

# The description says what a well-formed request is; some well-formed requests are still
# refused, with a documented error: a cursor this list never gave out (400 invalid_cursor), a
# URL that is not a Teams webhook URL or a webhook id that does not exist (422). The other
# checks still hold those answers to the description (status listed, error shape).
ACCEPTED_ANSWERS = ["2xx", "3xx", "400", "401", "403", "404", "409", "422", "429"]


@dataclass(frozen=True)
class Served:
    url: str
    slug: str
    api_token: str
    ingest_token: str
    folder: Path


def _wait_until_up(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"ticketmate serve exited:\n{log.read_text()}")
        try:
            with urllib.request.urlopen(f"{url}/healthz", timeout=2) as answer:
                if answer.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(0.2)
    raise RuntimeError(f"ticketmate serve did not answer in 30 s:\n{log.read_text()}")


def _call(url: str, method: str, body: Any, headers: dict[str, str]) -> Any:
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        method=method,
        headers={"Content-Type": "application/json", **headers},
    )
    with urllib.request.urlopen(request, timeout=10) as answer:
        return json.loads(answer.read())


def _seed(served: Served, sink: TeamsSink) -> None:
    """One of each thing the lists show, so that their items are checked against the
    description too: a webhook (to the local Teams stand-in), a subscription, a Jira event
    and the delivery it led to."""
    bearer = {"Authorization": f"Bearer {served.api_token}"}
    teams = f"{served.url}/api/v1/workspaces/{served.slug}/teams"
    webhook = _call(
        f"{teams}/webhooks",
        "POST",
        {"channel_name": "Engineering", "url": sink.url("/workflows/engineering")},
        bearer,
    )
    _call(
        f"{teams}/subscriptions",
        "POST",
        {"webhook_id": webhook["id"], "event_type": "issue_created"},
        bearer,
    )
    accepted = _call(
        f"{served.url}/api/webhooks/jira?workspace={served.slug}",
        "POST",
        json.loads(PAYLOAD.read_text()),
        {"Authorization": f"Bearer {served.ingest_token}"},
    )
    assert accepted["deliveries"] == 1, accepted


@pytest.fixture
def served(svc: Services, tmp_path: Path) -> Iterator[Served]:
    """`ticketmate serve` (without its delivery worker) on the test database."""
    workspace = make_workspace(svc, "acme")
    admin = make_user(svc, "admin@acme.test", {workspace.slug: "admin"})
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = cli_env(
        svc.settings.database_url,
        TICKETMATE_ALLOW_LOOPBACK_WEBHOOKS="true",
        TICKETMATE_BASE_URL=url,
        TICKETMATE_LOG_LEVEL="WARNING",
    )
    log = tmp_path / "serve.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [TICKETMATE, "serve", "--no-worker", "--port", str(port)],
            env=env,
            cwd=tmp_path,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:
        _wait_until_up(url, process, log)
        yield Served(url, workspace.slug, admin.token, workspace.jira.ingest_token, tmp_path)
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def _config(served: Served) -> str:
    # Every operation is tried in the administrator's own workspace (a random slug would only
    # ever meet 404), and intake with the workspace's ingest token.
    return "\n".join(
        (
            "[generation]",
            "max-examples = 8",
            "deterministic = true",
            'database = "none"',
            "[parameters]",
            f'"path.slug" = "{served.slug}"',
            f'"query.workspace" = "{served.slug}"',
            f'"query.token" = "{served.ingest_token}"',
            "[checks.positive_data_acceptance]",
            f"expected-statuses = {json.dumps(ACCEPTED_ANSWERS)}",
        )
    )


@pytest.mark.slow
def test_every_operation_answers_as_its_description_says(served: Served) -> None:
    with TeamsSink() as sink:
        _seed(served, sink)
        config = served.folder / "schemathesis.toml"
        config.write_text(_config(served) + "\n")
        run = subprocess.run(
            [
                SCHEMATHESIS,
                "--config-file",
                str(config),
                "run",
                f"{served.url}/openapi.json",
                "--header",
                f"Authorization: Bearer {served.api_token}",
                "--workers",
                "1",
                "--request-timeout",
                "20",
                "--no-color",
            ],
            cwd=served.folder,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
    report = run.stdout + run.stderr
    assert run.returncode == 0, report
    # The run reached every operation: none was left out or refused to load.
    assert "Tested: " in report, report


# -- Fast checks of the description itself (the run above is the thorough one) ---------------


def test_every_error_an_operation_lists_has_the_error_shape(client: TestClient) -> None:
    description = client.get("/openapi.json").json()
    operations = [
        (method.upper(), path, operation)
        for path, item in description["paths"].items()
        for method, operation in item.items()
    ]
    assert len(operations) > 25
    for method, path, operation in operations:
        where = f"{method} {path}"
        for status, answer in operation["responses"].items():
            if not status.startswith(("4", "5")) or path == "/readyz":
                continue
            schema = answer["content"]["application/json"]["schema"]
            assert schema == {"$ref": "#/components/schemas/ErrorResponse"}, (where, status)
            # The description names the codes the status carries.
            assert "`" in answer["description"], (where, status)
        if path.startswith("/api/v1/"):
            assert operation["security"] == [{"apiToken": []}, {"session": []}], where
            assert "401" in operation["responses"], where
            if "{slug}" in path:
                assert {"403", "404", "422"} <= set(operation["responses"]), where
        if any(p["name"] == "cursor" for p in operation.get("parameters", [])):
            assert "invalid_cursor" in operation["responses"]["400"]["description"], where
    error = description["components"]["schemas"]["ErrorResponse"]
    assert error["required"] == ["error"]
    # FastAPI's own {"detail": ...} shape is described nowhere: no answer has it.
    assert "HTTPValidationError" not in description["components"]["schemas"]


def test_a_405_names_every_method_of_the_address(client: TestClient, svc: Services) -> None:
    make_workspace(svc, "acme")
    teams = "/api/v1/workspaces/acme/teams"
    for path, allowed in (
        (f"{teams}/webhooks", "GET, POST"),
        (f"{teams}/webhooks/01ABC", "DELETE, GET, PATCH"),
        # /deliveries/{delivery_id} matches too; the address is the bulk retry's own.
        (f"{teams}/deliveries/retry", "POST"),
        ("/api/v1/workspaces/acme/jira/connection", "GET"),
    ):
        answer = client.request("OPTIONS", path)
        assert answer.status_code == 405, path
        assert answer.headers["allow"] == allowed, path
        assert answer.json()["error"]["code"] == "method_not_allowed"


def test_times_in_requests_are_rfc3339_not_numbers(client: TestClient, svc: Services) -> None:
    workspace = make_workspace(svc, "acme")
    token = bearer(make_user(svc, "admin@acme.test", {workspace.slug: "admin"}))
    base = "/api/v1/workspaces/acme"
    for answer in (
        client.get(f"{base}/teams/deliveries?until=0.5", headers=token),
        client.get(f"{base}/audit-log?since=1700000000", headers=token),
        client.post(f"{base}/teams/deliveries/retry", json={"until": 0}, headers=token),
    ):
        assert answer.status_code == 422, answer.text
        assert "RFC 3339" in answer.json()["error"]["message"]
    fine = client.get(f"{base}/teams/deliveries?until=2026-11-28T06:41:00Z", headers=token)
    assert fine.status_code == 200, fine.text
