"""`ticketmate dev demo`: the real command, in a folder of its own, on free ports.

It must print how to sign in, fill the Delivery Log from the replayed Jira payloads (cards at
the stand-in, one retried after a 429, dead letters after 410s), and stop everything it
started on SIGINT, as on Ctrl+C, with exit status 0.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import sqlite3
import subprocess
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx2
import pytest

from tests.conftest import free_port
from tests.support.processes import TICKETMATE
from tests.support.web import CSRF_FIELD


def demo_env() -> dict[str, str]:
    # The demo sets what it needs; nothing from the surrounding shell may change it.
    return {k: v for k, v in os.environ.items() if not k.startswith("TICKETMATE_")}


def get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as answer:
        return json.loads(answer.read())


def wait_for(check: Callable[[], bool], what: str, log: Path, timeout: float = 45) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except (OSError, sqlite3.Error):
            pass
        time.sleep(0.3)
    raise AssertionError(f"{what} did not happen in {timeout} s:\n{log.read_text()}")


def nothing_listens_on(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    except ConnectionRefusedError:
        return True
    return False


def deliveries(database: Path) -> list[tuple[str, int, int | None]]:
    with sqlite3.connect(f"file:{database}?mode=ro", uri=True) as db:
        rows = db.execute(
            "SELECT status, attempt_count, last_status_code FROM integration_delivery_log"
        ).fetchall()
    return [(str(s), int(n), code) for s, n, code in rows]


def webhooks(database: Path) -> dict[str, bool]:
    with sqlite3.connect(f"file:{database}?mode=ro", uri=True) as db:
        rows = db.execute("SELECT channel_name, enabled FROM teams_webhooks").fetchall()
    return {str(name): bool(enabled) for name, enabled in rows}


def stop(process: subprocess.Popen[bytes], log: Path) -> None:
    """After a failure too: Ctrl+C as a person would, then kill whatever is left, the demo's
    service child included (a killed demo could not stop it)."""
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
    for pid in re.findall(r"\(pid (\d+),", log.read_text(errors="replace")):
        with contextlib.suppress(ProcessLookupError):
            os.kill(int(pid), signal.SIGKILL)


@pytest.mark.slow
def test_demo_fills_the_delivery_log_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    port, sink_port = free_port(), free_port()
    log = tmp_path / "demo.out"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [
                TICKETMATE,
                "dev",
                "demo",
                "--port",
                str(port),
                "--sink-port",
                str(sink_port),
                "--interval",
                "0.2",
            ],
            cwd=tmp_path,
            env=demo_env(),
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:
        sink = f"http://127.0.0.1:{sink_port}"
        database = tmp_path / "var" / "demo" / "ticketmate.db"

        def received() -> list[dict[str, Any]]:
            items: list[dict[str, Any]] = get_json(f"{sink}/_received")["items"]
            return items

        def retried_and_dead() -> bool:
            rows = deliveries(database)
            retried = any(s == "delivered" and n >= 2 for s, n, _ in rows)
            dead = [code for s, _, code in rows if s == "dead_letter"]
            # #ops: three 410s in a row, and the webhook is disabled.
            return (
                retried
                and dead == [410, 410, 410]
                and webhooks(database)
                == {
                    "#eng": True,
                    "#ops": False,
                }
            )

        wait_for(retried_and_dead, "a retried delivery, dead letters, #ops disabled", log)
        text = log.read_text()
        assert "Ticket MATE → Teams  #eng answered 429" in text
        assert "Ticket MATE → Teams  #ops answered 410" in text

        # How to sign in, and where to look.
        assert f"http://127.0.0.1:{port}/login" in text
        assert "admin@example.com" in text
        password = re.search(r"Password:\s+(\S+)", text)
        assert password, text
        assert f"http://127.0.0.1:{sink_port}/" in text
        assert f"http://127.0.0.1:{port}/w/demo/admin/integrations/teams/deliveries" in text

        # The stand-in saw the 429 (then the same card again), the 410s and cards to #eng.
        items = received()
        answers = [(item["path"], item["answered"]) for item in items]
        assert ("/workflows/eng", 429) in answers
        assert ("/workflows/eng", 202) in answers
        assert any(code == 410 for _, code in answers)
        assert all(item["card"]["type"] == "AdaptiveCard" for item in items)
        page = urllib.request.urlopen(f"{sink}/", timeout=5).read().decode()
        assert page.count('class="received"') == len(items)
        assert page.count("data-adaptive-card=") == len(items)
        # The Workflows-style URL has a signature in its query; it is never shown.
        assert "sig=" not in page
        assert "sig=" not in json.dumps(items)

        # The printed credentials open the Delivery Log, which shows both outcomes.
        with httpx2.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
            form = client.get("/login")
            csrf = CSRF_FIELD.search(form.text)
            assert csrf, form.text
            signed_in = client.post(
                "/login",
                data={
                    "email": "admin@example.com",
                    "password": password.group(1),
                    "csrf_token": csrf.group(1),
                },
                follow_redirects=True,
            )
            assert signed_in.status_code == 200
            delivery_log = client.get("/w/demo/admin/integrations/teams/deliveries")
            assert delivery_log.status_code == 200
            assert "Dead letter" in delivery_log.text
            assert "Delivered" in delivery_log.text

        service_pid = re.search(r"\(pid (\d+),", text)
        assert service_pid, text

        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=30) == 0, log.read_text()
        assert "Stopped." in log.read_text()
        with pytest.raises(ProcessLookupError):
            os.kill(int(service_pid.group(1)), 0)
        assert nothing_listens_on(port)
        assert nothing_listens_on(sink_port)
    finally:
        stop(process, log)


def run_demo_briefly(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    # --exit-after first: a later one given in args wins, and a demo that wrongly starts
    # still ends by itself.
    return subprocess.run(
        [TICKETMATE, "dev", "demo", "--exit-after", "20", *args],
        cwd=tmp_path,
        env=demo_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_demo_leaves_a_folder_it_did_not_make(tmp_path: Path) -> None:
    precious = tmp_path / "mine" / "notes.txt"
    precious.parent.mkdir()
    precious.write_text("keep me")
    done = run_demo_briefly(
        tmp_path,
        "--folder",
        "mine",
        "--port",
        str(free_port()),
        "--sink-port",
        str(free_port()),
    )
    assert done.returncode == 1
    assert "mine exists and was not made by `ticketmate dev demo`" in done.stderr
    assert precious.read_text() == "keep me"


def test_demo_names_a_port_in_use(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = run_demo_briefly(tmp_path, "--port", str(port), "--sink-port", str(free_port()))
    assert done.returncode == 1
    assert f"port {port} (the service) is in use" in done.stderr
    assert not (tmp_path / "var").exists()


@pytest.mark.slow
def test_demo_stops_by_itself_after_exit_after(tmp_path: Path) -> None:
    sink_port = free_port()
    started = time.monotonic()
    done = run_demo_briefly(
        tmp_path,
        "--port",
        str(free_port()),
        "--sink-port",
        str(sink_port),
        "--interval",
        "0.1",
        "--events",
        "2",
        "--exit-after",
        "10",
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert time.monotonic() - started < 30
    assert "2/2" in done.stdout
    assert "3/2" not in done.stdout
    assert "Stopped." in done.stdout
    assert nothing_listens_on(sink_port)
    # The folder is emptied and made again at each start, marked as the demo's.
    assert (tmp_path / "var" / "demo" / ".ticketmate-demo").exists()
    again = run_demo_briefly(
        tmp_path, "--port", str(free_port()), "--sink-port", str(sink_port), "--exit-after", "0"
    )
    assert again.returncode == 0, again.stdout + again.stderr
