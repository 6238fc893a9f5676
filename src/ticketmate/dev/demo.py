"""`ticketmate dev demo`: the whole product on one machine, with nothing to set up.

On a fresh SQLite database in its own folder it creates the demo workspace and administrator,
two channels at a local Teams stand-in and a few subscriptions, starts `ticketmate serve` (with
its worker) as a child process, and replays real Jira payloads to it, signed as Jira signs
them. The stand-in answers the first card for #eng with 429 (so one delivery is retried) and
every card for #ops with 410, as Teams does for a connector that was removed (so those become
dead letters, and after TICKETMATE_AUTO_DISABLE_AFTER_REMOVED of them the webhook is
disabled). The replay goes through the payloads once and stops; everything keeps running
until Ctrl+C (or SIGTERM), which stops all of it.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any, TextIO

from ticketmate.dev.teams_sink import Answer, Received, TeamsSink, headline

PAYLOADS = Path(__file__).resolve().parent / "demo_payloads"
MM = "mattermost_mattermost-plugin-jira__"
TO_ENG = "to #eng"
TO_OPS = "to #ops: answered 410, a dead letter"
# A story about a few issues, in the order Jira would send it. Each line: the file, and what
# the newcomer should see happen to it.
STORY: tuple[tuple[str, str], ...] = (
    (f"{MM}issue-created.json", "to #eng: answered 429 first, then retried"),
    (f"{MM}issue-updated-status-todo-to-inprogress.json", TO_ENG),
    (f"{MM}cloud-comment-created.json", TO_ENG),
    (f"{MM}issue-updated-priority-raised.json", TO_OPS),
    (f"{MM}issue-updated-assigned.json", TO_OPS),
    (f"{MM}cloud-issue-created-many-fields.json", TO_ENG),
    (f"{MM}issue-updated-labels.json", "matches no subscription"),
    (f"{MM}issue-updated-status-resolved.json", TO_ENG),
    ("mobitel-ltd_jira-to-matrix__epic-created-cyrillic.json", TO_ENG),
    (f"{MM}issue-updated-unassigned.json", TO_OPS),
)

ENG_PATH = "/workflows/eng"  # a Workflows webhook: answers 202
OPS_PATH = "/webhookb2/ops/IncomingWebhook/retired"  # a legacy connector, removed in Teams
RETRY_AFTER_SECONDS = 5
RETRY_SCHEDULE = "5,10,30"  # short, so the retry shows within the first minute
MARKER = ".ticketmate-demo"  # only a folder holding this is ever deleted


class DemoError(RuntimeError):
    """The demo cannot start; the message says why."""


@dataclass(frozen=True)
class DemoOptions:
    port: int = 8000
    sink_port: int = 8765
    interval: float = 3.0
    folder: Path = Path("var/demo")
    events: int | None = None  # how many of the payloads to replay; all by default
    exit_after: float | None = None  # stop by itself after this many seconds


@dataclass(frozen=True)
class Prepared:
    slug: str
    jira_secret: str
    email: str
    password: str
    channels: dict[str, str]  # stand-in path → channel name


class Stop:
    """Set by SIGINT or SIGTERM, or due at a deadline. Waits sleep in short steps and look at a
    plain flag: a signal handler must not take a lock that the interrupted code may hold."""

    def __init__(self, after_seconds: float | None = None) -> None:
        self.signal_name = ""
        self.deadline = None if after_seconds is None else time.monotonic() + after_seconds

    def handle(self, signum: int, _frame: FrameType | None) -> None:
        self.signal_name = signal.Signals(signum).name

    @property
    def requested(self) -> bool:
        return bool(self.signal_name) or (
            self.deadline is not None and time.monotonic() >= self.deadline
        )

    def sleep(self, seconds: float) -> bool:
        """Sleep unless asked to stop; True when asked to stop."""
        until = time.monotonic() + seconds
        while not self.requested:
            remaining = until - time.monotonic()
            if remaining <= 0:
                break
            time.sleep(min(0.1, remaining))
        return self.requested


class Console:
    """Lines from the replay and from the stand-in's thread, never mixed within a line."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.lock = threading.Lock()

    def say(self, line: str = "") -> None:
        with self.lock:
            self.out.write(line + "\n")
            self.out.flush()


# -- set-up ------------------------------------------------------------------------------------


def fresh_folder(folder: Path) -> None:
    """Empty the demo folder, refusing one that the demo did not make."""
    if folder.exists():
        if not folder.is_dir():
            raise DemoError(f"{folder} is a file; choose another --folder")
        if any(folder.iterdir()) and not (folder / MARKER).exists():
            raise DemoError(
                f"{folder} exists and was not made by `ticketmate dev demo`; "
                "choose another --folder or remove it yourself"
            )
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    (folder / MARKER).write_text("Made by `ticketmate dev demo`; deleted at its next start.\n")


def require_free(port: int, what: str, option: str) -> None:
    with socket.socket() as sock:
        # As the servers bind: connections closing from a previous run (TIME_WAIT) are no
        # obstacle, a listener is.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            raise DemoError(
                f"port {port} ({what}) is in use; stop what uses it or choose another {option}"
            ) from None


def demo_environment(options: DemoOptions) -> dict[str, str]:
    """The settings the demo's service runs with, whatever the shell or .env says."""
    folder = options.folder.as_posix()
    return {
        "TICKETMATE_DATABASE_URL": f"sqlite:///{folder}/ticketmate.db",
        "TICKETMATE_ENCRYPTION_KEYS": "",
        "TICKETMATE_KEY_FILE": f"{folder}/encryption.key",
        "TICKETMATE_BASE_URL": f"http://127.0.0.1:{options.port}",
        "TICKETMATE_ALLOW_LOOPBACK_WEBHOOKS": "true",
        "TICKETMATE_RETRY_SCHEDULE_SECONDS": RETRY_SCHEDULE,
        "TICKETMATE_WORKER_POLL_SECONDS": "1",
    }


def prepare(options: DemoOptions) -> Prepared:
    """Migrate, then create the workspace, its administrator, the channels and subscriptions,
    through the same services as the API (validated and audit-logged)."""
    from ticketmate.app import build_services
    from ticketmate.bootstrap import bootstrap_if_empty
    from ticketmate.cli_support import CLI_REQUEST, acting_admin, settings
    from ticketmate.migrate import upgrade
    from ticketmate.teams import subscriptions, webhooks
    from ticketmate.teams.subscriptions import SubscriptionCreate, SubscriptionFilters
    from ticketmate.teams.webhooks import WebhookCreate
    from ticketmate.workspaces.service import get_by_slug, jira_credentials

    config = settings()
    upgrade(config.database_url)
    svc = build_services(config)
    try:
        first = bootstrap_if_empty(svc)
        if first is None:
            raise DemoError("the demo database was not empty")
        base = f"http://127.0.0.1:{options.sink_port}"
        # A query part as real Workflows URLs have (their signature): it must never be shown.
        eng_url = f"{base}{ENG_PATH}?sig={secrets.token_urlsafe(12)}"
        routes: list[tuple[str, dict[str, list[str]]]] = [
            ("issue_created", {}),
            ("status_changed", {"projects": ["TES"]}),
            ("comment_created", {"projects": ["TES"]}),
        ]
        ops_routes: list[tuple[str, dict[str, list[str]]]] = [
            ("priority_changed", {"priorities": ["High"]}),
            ("issue_assigned", {"projects": ["TES"]}),
        ]
        with svc.db.transaction() as session:
            workspace_id, actor = acting_admin(session, "demo", first.email)
            made: dict[str, str] = {}
            for name, url, routed in (
                ("#eng", eng_url, routes),
                ("#ops", f"{base}{OPS_PATH}", ops_routes),
            ):
                hook = webhooks.create_webhook(
                    session,
                    svc.keyring,
                    workspace_id,
                    WebhookCreate(channel_name=name, url=url),
                    allow_loopback=True,
                    actor=actor,
                    request=CLI_REQUEST,
                )
                made[name] = hook.id
                for event_type, filters in routed:
                    subscriptions.create_subscription(
                        session,
                        workspace_id,
                        SubscriptionCreate(
                            event_type=event_type,
                            webhook_id=hook.id,
                            filters=SubscriptionFilters(**filters),
                        ),
                        actor=actor,
                        request=CLI_REQUEST,
                    )
            workspace = get_by_slug(session, "demo")
            assert workspace is not None
            secret = jira_credentials(svc.keyring, workspace).secret
    finally:
        svc.db.dispose()
    return Prepared(
        "demo", secret, first.email, first.password, {ENG_PATH: "#eng", OPS_PATH: "#ops"}
    )


def script_sink(sink: TeamsSink) -> None:
    sink.script(
        ENG_PATH,
        Answer(429, "Too Many Requests", headers={"Retry-After": str(RETRY_AFTER_SECONDS)}),
    )
    sink.set_default(OPS_PATH, Answer(410, "Gone"))


# -- the service -------------------------------------------------------------------------------


def serve_child() -> None:
    """`ticketmate serve` as the demo's child: it stops itself (SIGTERM, a clean shutdown) if
    the demo dies without stopping it, e.g. killed with SIGKILL, so no service is left behind
    holding the port."""
    from ticketmate.cli import main

    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="demo-parent-watch", daemon=True).start()
    main()


def start_service(options: DemoOptions, log_path: Path) -> subprocess.Popen[bytes]:
    command = [
        sys.executable,
        "-c",
        "from ticketmate.dev.demo import serve_child; serve_child()",
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        str(options.port),
    ]
    with log_path.open("ab") as log:
        # A fixed command: this interpreter running `ticketmate serve`.
        return subprocess.Popen(  # noqa: S603
            command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )


def wait_until_ready(
    process: subprocess.Popen[bytes], url: str, stop: Stop, log_path: Path, timeout: float = 60
) -> bool:
    """True once /readyz answers 200; False when asked to stop first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            tail = log_path.read_text(errors="replace")[-2000:]
            raise DemoError(f"the service exited ({process.returncode}):\n{tail}")
        try:
            with urllib.request.urlopen(f"{url}/readyz", timeout=2) as answer:  # noqa: S310
                if answer.status == 200:
                    return True
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        if stop.sleep(0.2):
            return False
    raise DemoError(f"the service did not become ready in {timeout:g} s; see {log_path}")


def stop_service(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


# -- the replay --------------------------------------------------------------------------------


def summary_of(body: bytes) -> str:
    try:
        data: Any = json.loads(body)
        event = str(data.get("webhookEvent") or "?")
        kind = data.get("issue_event_type_name")
        key = (data.get("issue") or {}).get("key") or ""
    except (ValueError, AttributeError):
        return "?"
    return f"{event}{f' ({kind})' if kind else ''} {key}".strip()


def send_to_intake(base_url: str, slug: str, secret: str, body: bytes) -> str:
    from ticketmate.jira.signature import body_signature

    # Every URL here is http://127.0.0.1:<port>, built by this module.
    request = urllib.request.Request(  # noqa: S310
        f"{base_url}/api/webhooks/jira?workspace={slug}",
        data=body,
        method="POST",
        headers={
            "Content-Type": "application/json; charset=utf-8",
            "X-Hub-Signature": body_signature(secret, body),
            "X-Atlassian-Webhook-Identifier": str(uuid.uuid4()),
            "User-Agent": "Atlassian Webhook HTTP Client",
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:  # noqa: S310
            return str(answer.status)
    except urllib.error.HTTPError as exc:
        return str(exc.code)
    except (urllib.error.URLError, ConnectionError, TimeoutError) as exc:
        return f"not sent ({exc})"


def replay(
    options: DemoOptions,
    prepared: Prepared,
    stop: Stop,
    say: Callable[[str], None],
) -> int:
    story = STORY[: options.events] if options.events is not None else STORY
    base_url = f"http://127.0.0.1:{options.port}"
    sent = 0
    for number, (name, expected) in enumerate(story, start=1):
        if number > 1 and stop.sleep(options.interval):
            break
        body = (PAYLOADS / name).read_bytes()
        answer = send_to_intake(base_url, prepared.slug, prepared.jira_secret, body)
        progress = f"{number}/{len(story)}"
        say(f"Jira → Ticket MATE  {progress:>5}  {summary_of(body)}: {answer}; {expected}")
        sent += 1
    return sent


# -- the whole ---------------------------------------------------------------------------------


def banner(options: DemoOptions, prepared: Prepared, pid: int, log_path: Path) -> list[str]:
    service = f"http://127.0.0.1:{options.port}"
    return [
        "",
        "Ticket MATE demo",
        f"  Sign in:         {service}/login",
        f"  Email:           {prepared.email}",
        f"  Password:        {prepared.password}",
        f"  Delivery Log:    open {service}/w/{prepared.slug}/admin/integrations/teams/deliveries",
        f"  Teams stand-in:  http://127.0.0.1:{options.sink_port}/ (the cards as Teams shows them)",
        f"  Service:         {service} (pid {pid}, log {log_path})",
        f"  Channels: #eng answers 202 (the first card 429, retried after "
        f"{RETRY_AFTER_SECONDS} s); #ops answers 410, as a removed connector (dead letters).",
        f"Replaying {len(STORY) if options.events is None else min(options.events, len(STORY))} "
        f"Jira events, {options.interval:g} s apart. Ctrl+C stops everything.",
        "",
    ]


def run_demo(options: DemoOptions, out: TextIO | None = None) -> int:
    console = Console(out or sys.stdout)
    say = console.say
    stop = Stop(options.exit_after)
    previous = {
        signum: signal.signal(signum, stop.handle) for signum in (signal.SIGINT, signal.SIGTERM)
    }
    process: subprocess.Popen[bytes] | None = None
    sink: TeamsSink | None = None
    try:
        require_free(options.port, "the service", "--port")
        require_free(options.sink_port, "the Teams stand-in", "--sink-port")
        fresh_folder(options.folder)
        os.environ.update(demo_environment(options))
        prepared = prepare(options)

        sink = TeamsSink(port=options.sink_port)
        script_sink(sink)

        def arrived(record: Received) -> None:
            channel = prepared.channels.get(record.path, record.path)
            text = headline(record)[:80]
            say(f"Ticket MATE → Teams  {channel} answered {record.answered}: {text}")

        sink.on_receive = arrived
        sink.start()

        log_path = options.folder / "service.log"
        process = start_service(options, log_path)
        if not wait_until_ready(process, f"http://127.0.0.1:{options.port}", stop, log_path):
            return 0
        for line in banner(options, prepared, process.pid, log_path):
            say(line)

        sent = replay(options, prepared, stop, say)
        if not stop.requested:
            say(f"Replay finished ({sent} events). Everything keeps running; Ctrl+C to stop.")
        while not stop.sleep(1.0):
            pass
        return 0
    finally:
        if process is not None or sink is not None:
            why = stop.signal_name or ("time is up" if stop.requested else "stopping")
            say(f"{why}: stopping the replay, the service and the Teams stand-in.")
        if process is not None:
            stop_service(process)
        if sink is not None:
            sink.stop()
        if process is not None:
            say("Stopped.")
        for signum, handler in previous.items():
            signal.signal(signum, handler)
