"""The real service in a subprocess, a Teams stand-in, and the system Chromium via Playwright.

`playwright install` cannot download browsers here, so the tests drive the Debian package's
Chromium at /usr/bin/chromium. Without it these tests (and only these) are skipped, loudly.
"""

from __future__ import annotations

import json
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from tests.conftest import free_port
from tests.support.processes import TICKETMATE, cli_env, run_cli
from ticketmate.dev.teams_sink import TeamsSink

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
MISSING = f"BROWSER TESTS SKIPPED: {CHROMIUM} not found — apt-get install chromium"
REPO = Path(__file__).resolve().parents[2]
SCREENSHOTS = REPO / "var" / "screenshots"
PASSWORD = "correct horse battery"

requires_chromium = pytest.mark.skipif(not CHROMIUM.exists(), reason=MISSING)


def pytest_report_header() -> str | None:
    return None if CHROMIUM.exists() else MISSING


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not CHROMIUM.exists():
        terminalreporter.write_sep("!", MISSING, red=True, bold=True)


@dataclass(frozen=True)
class Service:
    """`ticketmate serve` on a free port with a SQLite database of its own."""

    url: str
    slug: str
    jira_secret: str
    admin_email: str
    member_email: str
    env: dict[str, str]
    folder: Path

    def page_url(self, path: str) -> str:
        return f"{self.url}{path}"


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


@pytest.fixture(scope="module")
def sink() -> Iterator[TeamsSink]:
    with TeamsSink() as running:
        yield running


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    if not CHROMIUM.exists():
        pytest.skip(MISSING)
    folder = tmp_path_factory.mktemp("served")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = cli_env(
        f"sqlite:///{folder / 'ticketmate.db'}",
        TICKETMATE_ALLOW_LOOPBACK_WEBHOOKS="true",
        TICKETMATE_BASE_URL=url,
        # One quick retry: after a failed first attempt the next comes ~15 s later (±20 %),
        # long enough to see the "retrying" state; a failure then makes a dead letter.
        TICKETMATE_RETRY_SCHEDULE_SECONDS="15",
        TICKETMATE_WORKER_POLL_SECONDS="0.5",
        TICKETMATE_LOG_LEVEL="WARNING",
    )

    def cli(*args: str, stdin: str | None = None) -> str:
        done = run_cli(list(args), env, folder, stdin)
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout

    cli("db", "upgrade")
    created = json.loads(cli("workspace", "create", "acme", "--name", "Acme Corp", "--json"))
    secret = str(created["jira_secret"])
    cli(
        "user",
        "create",
        "admin@acme.test",
        "--workspace",
        "acme",
        "--role",
        "admin",
        "--password-stdin",
        stdin=PASSWORD + "\n",
    )
    cli(
        "user",
        "create",
        "member@acme.test",
        "--workspace",
        "acme",
        "--role",
        "member",
        "--password-stdin",
        stdin=PASSWORD + "\n",
    )
    log = folder / "serve.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [TICKETMATE, "serve", "--port", str(port)],
            env=env,
            cwd=folder,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:
        _wait_until_up(url, process, log)
        yield Service(url, "acme", secret, "admin@acme.test", "member@acme.test", env, folder)
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


@pytest.fixture(scope="package")
def browser() -> Iterator[Browser]:
    """One Chromium for the browser tests; each test gets a fresh context (profile) of it.

    Package scope, not session: Playwright's sync API keeps an event loop running in the main
    thread while it is open, and later tests that run their own loop (asyncio.run) must not
    meet it."""
    if not CHROMIUM.exists():
        pytest.skip(MISSING)
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    report: pytest.TestReport = yield
    if report.when == "call":
        item.stash[FAILED] = report.failed
    return report


FAILED = pytest.StashKey[bool]()


@pytest.fixture
def page(request: pytest.FixtureRequest, browser: Browser, service: Service) -> Iterator[Page]:
    """A fresh browser profile (no cookies) on a 1280×800 window."""
    context = browser.new_context(viewport={"width": 1280, "height": 800}, base_url=service.url)
    context.set_default_timeout(15_000)
    opened = context.new_page()
    try:
        yield opened
        # What the browser showed when a test failed: the first thing to look at.
        if request.node.stash.get(FAILED, False):
            screenshot(opened, f"FAILED-{request.node.name}")
    finally:
        context.close()


def screenshot(page: Page, name: str) -> Path:
    """Save the window as var/screenshots/<name>.png (git-ignored) for people to look at."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=False)
    return path


def sign_in(page: Page, email: str) -> None:
    page.goto("/login")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url("**/")
