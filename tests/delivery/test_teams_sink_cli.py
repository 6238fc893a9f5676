"""`ticketmate dev teams-sink`: answers like Teams and prints each card that arrives."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import httpx2

from tests.conftest import free_port
from tests.support.processes import TICKETMATE, cli_env
from tests.support.teams import event
from ticketmate.jira.events import EventType
from ticketmate.teams.cards import render_message


def test_the_sink_answers_like_both_kinds_and_prints_cards(tmp_path: Path) -> None:
    port = free_port()
    process = subprocess.Popen(
        [TICKETMATE, "dev", "teams-sink", "--port", str(port)],
        env=cli_env("sqlite:///unused.db"),
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        body = render_message(event(["issue_created"], key="DEMO-7"), EventType.ISSUE_CREATED)
        for _ in range(100):
            try:
                workflows = httpx2.post(f"http://127.0.0.1:{port}/workflows/demo", content=body)
                break
            except httpx2.TransportError:
                time.sleep(0.1)
        connector = httpx2.post(f"http://127.0.0.1:{port}/webhookb2/demo", content=body)
    finally:
        process.terminate()
        output, _ = process.communicate(timeout=10)
    assert (workflows.status_code, workflows.text) == (202, "")
    assert (connector.status_code, connector.text) == (200, "1")
    assert f"http://127.0.0.1:{port}/workflows/demo" in output
    assert "/workflows/demo → 202: Issue Created | Alice created bug DEMO-7" in output
