"""Fixtures: every database test runs on SQLite and, when configured, on PostgreSQL."""

from __future__ import annotations

import os
import socket
from collections.abc import Generator, Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from tests.support.databases import backends, postgres_database, sqlite_database
from ticketmate.app import create_app
from ticketmate.config import Settings, load_settings
from ticketmate.db import Database
from ticketmate.models import Base
from ticketmate.security.crypto import Keyring
from ticketmate.state import Services

TEST_KEY_LINE = "test1:" + "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVowMTIzNDU="  # 32 bytes of text

# Tests must never read the developer's .env or TICKETMATE_* variables by accident; only the
# TICKETMATE_TEST_* ones, which steer the tests themselves, stay.
for _name in list(os.environ):
    if _name.startswith("TICKETMATE_") and not _name.startswith("TICKETMATE_TEST_"):
        del os.environ[_name]


@pytest.fixture(scope="session", params=backends())
def database_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    if request.param == "postgresql":
        with postgres_database() as url:
            yield url
    else:
        with sqlite_database(tmp_path_factory.mktemp("sqlite")) as url:
            yield url


def make_settings(database_url: str, tmp_path: Path, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "database_url": database_url,
        "encryption_keys": TEST_KEY_LINE,
        "key_file": tmp_path / "unused.key",
        "allow_loopback_webhooks": True,
        "base_url": "http://testserver",
        "_env_file": None,
    }
    values.update(overrides)
    return load_settings(**values)


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return make_settings(database_url, tmp_path)


@pytest.fixture
def svc(settings: Settings) -> Iterator[Services]:
    services = Services(
        settings=settings, db=Database(settings), keyring=Keyring(settings.configured_keys)
    )
    try:
        yield services
    finally:
        _empty_tables(services.db)
        services.db.dispose()


def _empty_tables(db: Database) -> None:
    tables = [t.name for t in reversed(Base.metadata.sorted_tables)]
    with db.engine.begin() as connection:
        if db.dialect == "postgresql":
            connection.execute(text(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE"))
        else:
            for name in tables:
                connection.execute(text(f"DELETE FROM {name}"))


@pytest.fixture
def client(svc: Services) -> Iterator[TestClient]:
    with TestClient(create_app(svc.settings, services=svc)) as test_client:
        yield test_client


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def running_in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """In CI a skipped browser test fails the run: CI provides Chromium, so a skip there
    means the browser tests did not run, and a green run would say they passed."""
    report = yield
    if (
        report.skipped
        and not hasattr(report, "wasxfail")
        and item.get_closest_marker("browser") is not None
        and running_in_ci()
    ):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr
        report.outcome = "failed"
        report.longrepr = f"browser test skipped in CI (CI={os.environ['CI']}): {reason}"
    return report
