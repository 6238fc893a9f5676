"""What every benchmark shares: fresh databases, the real service processes, setup, tables.

The service under test is always the real `ticketmate` command in its own process; this
module only starts it, sets up its data, and reads what it did.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
PAYLOADS = ROOT / "tests" / "fixtures" / "jira-payloads"
PAYLOAD = (
    PAYLOADS / "mattermost_mattermost-plugin-jira__issue-updated-status-todo-to-inprogress.json"
)
BIN = Path(sys.executable).parent
TICKETMATE = str(BIN / "ticketmate")
PYTHON = sys.executable
KEY = "bench:QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVowMTIzNDU="
POSTGRES = os.environ.get("BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def say(text: str) -> None:
    print(f"  · {text}", flush=True)


# -- databases ----------------------------------------------------------------------------


@contextlib.contextmanager
def fresh_database(kind: str) -> Iterator[str]:
    """A new SQLite file or a new PostgreSQL database (bench_<random>), dropped afterwards."""
    if kind == "sqlite":
        folder = Path(tempfile.mkdtemp(prefix="tm-bench-"))
        yield f"sqlite:///{folder / 'bench.db'}"
        return
    import sqlalchemy

    from ticketmate.db import normalise_database_url

    name = f"bench_{secrets.token_hex(4)}"
    admin = sqlalchemy.create_engine(normalise_database_url(POSTGRES), isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(sqlalchemy.text(f'CREATE DATABASE "{name}"'))
    try:
        yield POSTGRES.rsplit("/", 1)[0] + "/" + name
    finally:
        with admin.connect() as c:
            c.execute(sqlalchemy.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def postgres_version() -> str:
    import sqlalchemy

    from ticketmate.db import normalise_database_url

    engine = sqlalchemy.create_engine(normalise_database_url(POSTGRES))
    with engine.connect() as c:
        version = str(c.execute(sqlalchemy.text("SHOW server_version")).scalar())
    engine.dispose()
    return version


# -- the service's processes --------------------------------------------------------------


def service_env(database: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TICKETMATE_")}
    env.update(
        TICKETMATE_DATABASE_URL=database,
        TICKETMATE_ENCRYPTION_KEYS=KEY,
        TICKETMATE_ALLOW_LOOPBACK_WEBHOOKS="true",
        TICKETMATE_LOG_LEVEL="WARNING",
    )
    env.update(extra)
    return env


@dataclass
class Workspace:
    slug: str
    id: str
    secret: str


def prepare_database(env: dict[str, str], slug: str = "bench") -> Workspace:
    """Migrate and make a workspace, in this process through the service's own functions
    (what `ticketmate db upgrade` and `ticketmate workspace create` call): two process starts
    fewer for each of the dozen databases a run makes."""
    from ticketmate.migrate import upgrade
    from ticketmate.workspaces.service import create_workspace, jira_credentials

    database = env["TICKETMATE_DATABASE_URL"]
    upgrade(database)
    svc = services(database)
    with svc.db.transaction() as session:
        workspace = create_workspace(session, svc.keyring, slug)
        made = Workspace(slug, workspace.id, jira_credentials(svc.keyring, workspace).secret)
    svc.db.dispose()
    return made


class Process:
    """One real process of the service (or of a helper), its output kept in a log file."""

    def __init__(self, args: Sequence[str], env: dict[str, str], name: str) -> None:
        self.name = name
        self.log = Path(tempfile.mkstemp(prefix=f"tm-bench-{name}-", suffix=".log")[1])
        self._out = self.log.open("wb")
        self.popen = subprocess.Popen(
            list(args), env=env, stdout=self._out, stderr=subprocess.STDOUT, cwd=ROOT
        )

    @property
    def pid(self) -> int:
        return self.popen.pid

    def peak_rss_mb(self) -> float:
        """VmHWM of the process and its children (the CLI spawns none today)."""
        total = 0.0
        for pid in [self.pid, *_children(self.pid)]:
            with contextlib.suppress(OSError):
                for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                    if line.startswith("VmHWM:"):
                        total += int(line.split()[1]) / 1024
        return round(total, 1)

    def check_alive(self) -> None:
        if self.popen.poll() is not None:
            tail = self.log.read_text(errors="replace")[-2000:]
            raise RuntimeError(f"{self.name} exited with {self.popen.returncode}:\n{tail}")

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(20)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()
        self._out.close()


def _children(pid: int) -> list[int]:
    found: list[int] = []
    with contextlib.suppress(OSError):
        for task in Path(f"/proc/{pid}/task").iterdir():
            with contextlib.suppress(OSError):
                found += [int(p) for p in (task / "children").read_text().split()]
    return found


def wait_http(url: str, process: Process, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        process.check_alive()
        try:
            with urllib.request.urlopen(url, timeout=2):  # noqa: S310 - 127.0.0.1 only
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{process.name} did not answer {url} within {timeout:.0f}s")


def serve(env: dict[str, str], *, worker: bool = False) -> tuple[Process, str]:
    port = free_port()
    args = [TICKETMATE, "serve", "--port", str(port)]
    if not worker:
        args.append("--no-worker")
    process = Process(args, env, "serve")
    base = f"http://127.0.0.1:{port}"
    wait_http(base + "/healthz", process)
    return process, base


def worker(env: dict[str, str], concurrency: int = 64, name: str = "worker") -> Process:
    return Process([TICKETMATE, "worker", "--concurrency", str(concurrency)], env, name)


class Helper(Process):
    """A benchmark helper (stand-in, load generator, baseline) in its own Python process."""

    def __init__(self, module: str, args: Sequence[str], name: str, **env: str) -> None:
        full = dict(os.environ)
        full.update(env)
        super().__init__([PYTHON, "-m", f"bench.{module}", *args], full, name)


def run_helper(module: str, args: Sequence[str], timeout: float = 900, **env: str) -> Any:
    """Run a helper to completion; it prints one JSON object as its last line."""
    full = dict(os.environ)
    full.update(env)
    done = subprocess.run(
        [PYTHON, "-m", f"bench.{module}", *args],
        env=full,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"bench.{module} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


# -- setup through the service's own layer -------------------------------------------------


def services(database: str) -> Any:
    from ticketmate.app import build_services
    from ticketmate.config import load_settings

    settings = load_settings(
        _env_file=None, database_url=database, encryption_keys=KEY, allow_loopback_webhooks=True
    )
    return build_services(settings)


def add_webhooks(database: str, workspace: Workspace, urls: Sequence[str]) -> list[str]:
    """Webhooks through the service layer (validation, encryption, audit), in one commit."""
    from ticketmate.audit.service import SYSTEM
    from ticketmate.teams.webhooks import WebhookCreate, create_webhook

    svc = services(database)
    ids = []
    with svc.db.transaction() as session:
        for n, url in enumerate(urls):
            hook = create_webhook(
                session,
                svc.keyring,
                workspace.id,
                WebhookCreate(channel_name=f"channel-{n:05d}", url=url),
                allow_loopback=True,
                actor=SYSTEM,
            )
            ids.append(hook.id)
    svc.db.dispose()
    return ids


def add_subscriptions(
    database: str, workspace: Workspace, rows: Sequence[tuple[str, str, dict[str, list[str]]]]
) -> None:
    """(webhook id, event type, filters) rows inserted in bulk through the ORM's table, so
    10,000 of them take a second; the service reads them exactly as if made by the API."""
    from sqlalchemy import insert

    from ticketmate.ids import new_id
    from ticketmate.models import TeamsSubscription
    from ticketmate.timeutil import utcnow

    svc = services(database)
    now = utcnow()
    with svc.db.transaction() as session:
        session.execute(
            insert(TeamsSubscription),
            [
                {
                    "id": new_id(),
                    "workspace_id": workspace.id,
                    "webhook_id": hook,
                    "event_type": event_type,
                    "enabled": True,
                    "filters": filters,
                    "created_at": now,
                    "updated_at": now,
                }
                for hook, event_type, filters in rows
            ],
        )
    svc.db.dispose()


def jira_body(target_bytes: int = 4096, key: str = "TES-41", long_card: bool = False) -> bytes:
    """The status-change capture, trimmed of fields the product never reads to ~4 KB; with
    `long_card`, a summary and labels long enough that its card is about 2 KB."""
    payload: dict[str, Any] = json.loads(PAYLOAD.read_bytes())
    payload["issue"]["key"] = key
    if long_card:
        words = "Checkout fails for customers paying with saved cards after the upgrade; "
        fields = payload["issue"]["fields"]
        fields["summary"] = (words * 4)[:250]
        fields["labels"] = [f"customer-escalation-payments-checkout-{n}" for n in range(5)]
        fields["components"] = [{"name": f"Payments gateway integration {n}"} for n in range(5)]
    fields = payload["issue"]["fields"]
    keep = {"project", "priority", "status", "issuetype", "summary", "assignee", "reporter"}
    keep |= {"labels", "components", "description"}
    for name in sorted(fields, key=lambda n: -len(json.dumps(fields[n]))):
        if len(json.dumps(payload, separators=(",", ":"))) <= target_bytes:
            break
        if name not in keep:
            del fields[name]
    body = json.dumps(payload, separators=(",", ":"))
    if len(body) < target_bytes - 200:
        fields["description"] = (fields.get("description") or "") + "x" * (target_bytes - len(body))
        body = json.dumps(payload, separators=(",", ":"))
    return body.encode()


def signature(secret: str, body: bytes) -> str:
    from ticketmate.jira.signature import body_signature

    return body_signature(secret, body)


# -- profiles -----------------------------------------------------------------------------


class Profile:
    """py-spy on one service process, --nonblocking so sampling never pauses the process."""

    def __init__(self, pid: int, name: str) -> None:
        self.name = name
        self.raw = RESULTS / f"profile-{name}.collapsed"
        self.popen = subprocess.Popen(
            [
                str(BIN / "py-spy"),
                "record",
                "--nonblocking",
                "--pid",
                str(pid),
                "--rate",
                "100",
                "--format",
                "raw",
                "--output",
                str(self.raw),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(0.5)

    def finish(self) -> Path:
        self.popen.send_signal(signal.SIGINT)
        self.popen.wait(30)
        return summarise_profile(self.raw, RESULTS / f"profile-{self.name}.md", self.name)


def summarise_profile(raw: Path, out: Path, name: str, top: int = 25) -> Path:
    own: Counter[str] = Counter()
    total: Counter[str] = Counter()
    samples = 0
    if raw.exists():
        for line in raw.read_text(errors="replace").splitlines():
            stack, _, count_text = line.rpartition(" ")
            if not stack or not count_text.isdigit():
                continue
            count = int(count_text)
            frames = [f.split(" (", 1)[0] + " (" + _file(f) + ")" for f in stack.split(";")]
            frames = [f for f in frames if not f.startswith("process ")]
            if not frames:
                continue
            samples += count
            own[frames[-1]] += count
            for frame in set(frames):
                total[frame] += count
    lines = [f"# py-spy profile: {name}", "", f"{samples:,} samples at 100 Hz.", ""]
    for title, counter in (("own time", own), ("total time", total)):
        lines += [
            f"## Top {top} by {title}",
            "",
            "| % | samples | function |",
            "| ---: | ---: | --- |",
        ]
        for frame, count in counter.most_common(top):
            share = 100 * count / samples if samples else 0
            lines.append(f"| {share:.1f} | {count:,} | `{frame}` |")
        lines.append("")
    out.write_text("\n".join(lines))
    return out


def _file(frame: str) -> str:
    inner = frame.split(" (", 1)[1].rstrip(")") if " (" in frame else ""
    # By function, not by line: one row per function however many lines it spends time on.
    path = inner.rpartition(":")[0] or inner
    for marker in ("site-packages/", "/src/", "/lib/python"):
        if marker in path:
            return path.split(marker, 1)[1]
    return path


# -- reporting ----------------------------------------------------------------------------


def table(title: str, rows: Sequence[tuple[str, str, str, str]]) -> str:
    """A Markdown table: what, measured, baseline (same run), ratio."""
    lines = [f"### {title}", "", "| measure | value | baseline (same run) | ratio |"]
    lines.append("| --- | ---: | ---: | ---: |")
    lines += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows]
    return "\n".join(lines) + "\n"


def ratio(value: float, baseline: float) -> float:
    return round(value / baseline, 4) if baseline else 0.0


def machine() -> dict[str, Any]:
    import importlib.util

    model = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    uvloop = importlib.util.find_spec("uvloop") is not None
    httptools = importlib.util.find_spec("httptools") is not None
    return {
        "cores": os.cpu_count(),
        "cpu_model": model,
        "python": platform.python_version(),
        "postgresql": postgres_version(),
        "os": platform.platform(),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        # uvicorn's "auto" picks uvloop and httptools whenever they are importable, so the
        # service runs on what this environment has installed; the worker runs on uvloop.
        "serve_event_loop": "uvloop" if uvloop else "asyncio",
        "serve_http_parser": "httptools" if httptools else "h11",
        "worker_event_loop": "uvloop",
    }


def commit() -> str:
    """The commit measured, with `+changes` when the working tree differs from it."""

    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=False)
        return done.stdout.strip()

    head = git("rev-parse", "--short", "HEAD") or "unknown"
    import ticketmate

    source = Path(ticketmate.__file__).resolve().parents[2]
    if source != ROOT:
        return f"{head} (ticketmate imported from {source})"
    dirty = git("status", "--porcelain", "--untracked-files=no", "src")
    return head + ("+changes" if dirty else "")
