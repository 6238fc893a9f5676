"""X-Forwarded-For is believed only from the proxies named in TICKETMATE_TRUSTED_PROXIES:
from anyone else it could put any address into the audit log and the sign-in throttle."""

from __future__ import annotations

from pathlib import Path

import httpx2
import pytest
from sqlalchemy import select

from tests.support.processes import ServeProcess
from tests.support.web import csrf_from
from ticketmate.models import AuditEntry
from ticketmate.state import Services

CLAIMED = "203.0.113.9"  # what a client says its address is


@pytest.mark.parametrize(
    ("trusted", "recorded"),
    [
        (None, "127.0.0.1"),  # the default: no proxy is trusted
        ("10.0.0.0/8", "127.0.0.1"),  # a proxy is trusted, but this request is not from it
        ("127.0.0.1", CLAIMED),  # the request comes through the trusted proxy
    ],
)
def test_the_audit_log_records_a_forwarded_address_only_from_a_trusted_proxy(
    svc: Services, tmp_path: Path, trusted: str | None, recorded: str
) -> None:
    env = {} if trusted is None else {"TICKETMATE_TRUSTED_PROXIES": trusted}
    serve = ServeProcess(svc.settings.database_url, tmp_path, **env)
    with serve.start(), httpx2.Client(base_url=serve.url) as http:
        form = http.get("/login")
        answer = http.post(
            "/login",
            data={
                "email": "nobody@example.com",
                "password": "not-a-password-here",
                "csrf_token": csrf_from(form.text),
            },
            headers={"X-Forwarded-For": CLAIMED, "X-Forwarded-Proto": "https"},
            follow_redirects=False,
        )
    assert answer.status_code == 401
    with svc.db.transaction() as session:
        entry = session.scalar(select(AuditEntry).where(AuditEntry.action == "auth.signin.failed"))
    assert entry is not None
    assert entry.ip == recorded


def test_a_proxy_setting_that_is_not_an_address_is_refused_at_start(tmp_path: Path) -> None:
    from tests.conftest import make_settings
    from ticketmate.config import ConfigError

    with pytest.raises(ConfigError, match="not an IP address"):
        make_settings("sqlite:///unused.db", tmp_path, trusted_proxies="10.0.0.5,proxy.local")
    settings = make_settings("sqlite:///unused.db", tmp_path, trusted_proxies=" 10.0.0.5 , ::1 ")
    assert settings.trusted_proxies == "10.0.0.5,::1"
