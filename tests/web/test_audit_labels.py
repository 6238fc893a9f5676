"""Every audit action the product records has words on the Audit Log page."""

from __future__ import annotations

import re
from pathlib import Path

import ticketmate
from ticketmate.web.labels import AUDIT_ACTION_LABELS

SOURCE = Path(ticketmate.__file__).parent
# Literal action names as the code writes them: action="x.y.z", or in a conditional expression.
ACTION = re.compile(r'"((?:teams|jira|keys|auth)\.[a-z_]+(?:\.[a-z_]+)+)"')


def recorded_actions() -> set[str]:
    found: set[str] = set()
    for path in SOURCE.rglob("*.py"):
        if path.name == "labels.py":
            continue
        text = path.read_text()
        for line in text.splitlines():
            if "action" in line:
                found.update(ACTION.findall(line))
    # Built from the credential's name: jira.{secret,ingest_token}.regenerated.
    found.update({"jira.secret.regenerated", "jira.ingest_token.regenerated"})
    return found


def test_every_recorded_action_has_a_label() -> None:
    actions = recorded_actions()
    assert {"jira.base_url.learned", "teams.webhook.created"} <= actions  # the scan finds them
    missing = sorted(a for a in actions if a not in AUDIT_ACTION_LABELS)
    assert missing == []
