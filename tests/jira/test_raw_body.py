"""The raw body is kept and answered exactly as Jira sent it, not as a JSON parser reads it.

`raw_payload` (the parsed body) cannot carry 1e400, repeated keys, the key order or the
spacing; `raw_body` must, byte for byte, whatever the body holds.
"""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from tests.jira.support import post_signed, post_with_token, stored
from tests.support.factories import MadeUser, MadeWorkspace, bearer, make_user
from ticketmate.state import Services

BASE = "/api/v1/workspaces/acme/jira"

# What no JSON parser hands back as it came: a number beyond the double range, keys out of
# order and repeated, spacing of every kind JSON allows, \u escapes (also of a surrogate pair)
# next to the same letters as UTF-8, and a trailing newline.
ODD = (
    b'\t{ "zeta" :1e400,\r\n  "webhookEvent":"jira:issue_created" ,'
    b'"issue":{"key":"TES-1","key":"TES-2","fields":{"summary":"caf\\u00e9 / caf\xc3\xa9",'
    b'"customfield_1":  -0.0E-0, "customfield_2": 100000000000000000000000000001,'
    b'"customfield_3":"\\ud83d\\ude00 \xf0\x9f\x98\x80 \\/ \\""}},'
    b'"timestamp":1.5e12}\n\n'
)
IGNORED = b'{"webhookEvent":"sprint_started","n":1E+400,"n":-1e400 ,"sprint":{}}'
REJECTED = b'{"webhookEvent":"jira:issue_created","issue":"not an object","x":1e400}'
BOM = b'\xef\xbb\xbf{"webhookEvent":"jira:issue_created","issue":{"key":"TES-3","fields":{}}}'


@pytest.fixture
def admin(svc: Services, workspace: MadeWorkspace) -> MadeUser:
    return make_user(svc, "admin@acme.test", {workspace.slug: "admin"})


@pytest.mark.parametrize(
    ("body", "status"),
    [(ODD, "routed"), (IGNORED, "ignored"), (REJECTED, "rejected"), (BOM, "routed")],
    ids=["odd", "ignored", "rejected", "bom"],
)
def test_raw_body_comes_back_byte_identical(
    client: TestClient,
    svc: Services,
    workspace: MadeWorkspace,
    admin: MadeUser,
    body: bytes,
    status: str,
) -> None:
    response = post_signed(client, workspace, body)
    assert response.status_code == 202, response.text
    event_id = response.json()["event_id"]
    record = stored(svc, event_id)
    assert record.status == status, record.reason
    assert record.raw_body.encode() == body

    detail = client.get(f"{BASE}/events/{event_id}", headers=bearer(admin))
    assert detail.status_code == 200, detail.text
    assert detail.json()["raw_body"].encode() == body
    assert isinstance(detail.json()["raw_payload"], dict)  # still parsed, the BOM's too


def test_the_parsed_payload_is_still_there_and_says_what_it_loses(
    client: TestClient, workspace: MadeWorkspace, admin: MadeUser
) -> None:
    event_id = post_with_token(client, workspace, ODD).json()["event_id"]
    detail = client.get(f"{BASE}/events/{event_id}", headers=bearer(admin)).json()
    assert detail["raw_body"].encode() == ODD
    parsed = detail["raw_payload"]
    assert parsed["zeta"] is None  # 1e400: what JSON cannot carry, and why raw_body exists
    assert parsed["issue"]["key"] == "TES-2"  # the last of the repeated keys
    assert parsed["issue"]["fields"]["summary"] == "café / café"
    assert detail["envelope"]["issue"]["key"] == "TES-2"

    spec = client.get("/openapi.json").json()["components"]["schemas"]["JiraEventDetailOut"]
    assert spec["properties"]["raw_body"]["type"] == "string"
    assert "raw_body" in spec["required"]
