"""Settings: defaults, and a one-line error naming the variable for every bad value."""

from __future__ import annotations

import pytest

from ticketmate.config import ConfigError, load_settings
from ticketmate.db import normalise_database_url


def settings(**values: object) -> object:
    return load_settings(_env_file=None, **values)


def test_defaults_follow_the_spec() -> None:
    s = load_settings(_env_file=None)
    assert s.worker_poll_seconds == 5
    assert s.delivery_timeout_seconds == 8
    assert s.allow_loopback_webhooks is False
    assert s.database_url.startswith("sqlite:///var/")
    assert s.retry_schedule_seconds == (10, 30, 120, 600, 1800, 3600, 7200)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("worker_poll_seconds", "0", "TICKETMATE_WORKER_POLL_SECONDS: must be a positive number"),
        (
            "worker_poll_seconds",
            "soon",
            "TICKETMATE_WORKER_POLL_SECONDS: must be a positive number",
        ),
        (
            "delivery_timeout_seconds",
            "-1",
            "TICKETMATE_DELIVERY_TIMEOUT_SECONDS: must be a positive",
        ),
        ("database_url", "mysql://x/y", "TICKETMATE_DATABASE_URL: must start with sqlite:///"),
        (
            "allow_loopback_webhooks",
            "maybe",
            "TICKETMATE_ALLOW_LOOPBACK_WEBHOOKS: must be true or false",
        ),
        (
            "encryption_keys",
            "k1:notbase64!",
            "TICKETMATE_ENCRYPTION_KEYS: key 'k1' is not valid base64",
        ),
        (
            "encryption_keys",
            "k1:QUJD",
            "TICKETMATE_ENCRYPTION_KEYS: key 'k1' must decode to 32 bytes",
        ),
        ("encryption_keys", "nokid", "TICKETMATE_ENCRYPTION_KEYS: each key must be written"),
        ("base_url", "example.com", "TICKETMATE_BASE_URL: must start with http"),
        ("retry_schedule_seconds", "10,x", "TICKETMATE_RETRY_SCHEDULE_SECONDS: must be a comma"),
    ],
)
def test_bad_values_name_the_variable(
    monkeypatch: pytest.MonkeyPatch, field: str, value: str, message: str
) -> None:
    monkeypatch.setenv(f"TICKETMATE_{field.upper()}", value)
    with pytest.raises(ConfigError) as caught:
        load_settings(_env_file=None)
    assert str(caught.value).startswith(message)
    assert "\n" not in str(caught.value)


def test_two_keys_parse_in_order(monkeypatch: pytest.MonkeyPatch) -> None:
    key = "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVowMTIzNDU="
    monkeypatch.setenv("TICKETMATE_ENCRYPTION_KEYS", f"new:{key}, old:{key}")
    s = load_settings(_env_file=None)
    assert [kid for kid, _ in s.configured_keys] == ["new", "old"]


def test_retry_schedule_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TICKETMATE_RETRY_SCHEDULE_SECONDS", "1, 2.5,60")
    assert load_settings(_env_file=None).retry_schedule_seconds == (1.0, 2.5, 60.0)


@pytest.mark.parametrize(
    ("given", "used"),
    [
        ("sqlite:///var/x.db", "sqlite:///var/x.db"),
        ("sqlite:////tmp/x.db", "sqlite:////tmp/x.db"),
        ("postgresql://u@127.0.0.1:5432/db", "postgresql+psycopg://u@127.0.0.1:5432/db"),
        ("postgres://u@h/db", "postgresql+psycopg://u@h/db"),
        ("postgresql+psycopg://u@h/db", "postgresql+psycopg://u@h/db"),
    ],
)
def test_the_service_picks_the_driver(given: str, used: str) -> None:
    assert normalise_database_url(given) == used
