"""`ticketmate teams subscription add|update|list` with --combine and --digest, and
`teams webhook add|update --storm`, as a real subprocess on the test database."""

from __future__ import annotations

import json
import subprocess
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from tests.support.factories import make_user, make_workspace
from tests.support.processes import cli_env, run_cli
from tests.support.teams import make_webhook
from ticketmate.models import AuditEntry, TeamsSubscription, TeamsWebhook
from ticketmate.state import Services
from ticketmate.timeutil import rfc3339

HOOK_URL = "http://127.0.0.1:9/workflows/eng"
OTHER_URL = "http://127.0.0.1:9/workflows/ops"
BERLIN = "daily@09:00/Europe/Berlin"


@pytest.fixture
def env(database_url: str, client: TestClient, svc: Services) -> dict[str, str]:
    # `client` empties the tables after the test, as for every database test.
    workspace = make_workspace(svc, "acme", "Acme Corp")
    make_user(svc, "admin@acme.test", {"acme": "admin"})
    make_webhook(svc, workspace.id, "#eng", HOOK_URL)
    return cli_env(database_url, TICKETMATE_ALLOW_LOOPBACK_WEBHOOKS="true")


def teams(
    env: dict[str, str], tmp_path: Path, kind: str, *args: str, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    return run_cli(
        ["teams", kind, *args, "--workspace", "acme", "--as", "admin@acme.test"],
        env,
        tmp_path,
        stdin=stdin,
    )


def sub(env: dict[str, str], tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return teams(env, tmp_path, "subscription", *args)


def add_json(env: dict[str, str], tmp_path: Path, *args: str) -> dict[str, Any]:
    added = sub(env, tmp_path, "add", "--event-type", "issue_updated", "--webhook", "#eng",
                *args, "--json")  # fmt: skip
    assert added.returncode == 0, added.stderr
    view: dict[str, Any] = json.loads(added.stdout)
    return view


def stored(svc: Services, subscription_id: str) -> TeamsSubscription:
    with svc.db.transaction() as session:
        row = session.get(TeamsSubscription, subscription_id)
        assert row is not None
        session.expunge(row)
        return row


def all_subscriptions(svc: Services) -> list[TeamsSubscription]:
    with svc.db.transaction() as session:
        return list(session.scalars(select(TeamsSubscription)))


def list_lines(env: dict[str, str], tmp_path: Path) -> dict[str, str]:
    listed = sub(env, tmp_path, "list")
    assert listed.returncode == 0, listed.stderr
    return {line.split()[0]: line for line in listed.stdout.splitlines()}


def assert_one_line_error(result: subprocess.CompletedProcess[str], says: str) -> None:
    assert result.returncode == 1, (result.stdout, result.stderr)
    assert result.stdout == ""
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert result.stderr.startswith("error: "), result.stderr
    assert says in result.stderr, result.stderr


def as_utc(value: datetime | None) -> datetime:
    assert value is not None
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


# -- subscriptions: combining ---------------------------------------------------------------


def test_add_with_combine_is_stored_and_listed(
    env: dict[str, str], tmp_path: Path, svc: Services
) -> None:
    view = add_json(env, tmp_path, "--combine", "30s")
    assert (view["combine"], view["digest"], view["next_digest_at"]) == ("30s", "off", None)
    row = stored(svc, view["id"])
    assert (row.combine_seconds, row.digest, row.next_digest_at) == (30, None, None)

    # Written the way the form names it, whatever the case; the text answer names it too.
    upper = sub(env, tmp_path, "add", "--event-type", "comment_created", "--webhook", "#eng",
                "--combine", "1M")  # fmt: skip
    assert upper.returncode == 0, upper.stderr
    assert upper.stdout.strip().endswith("→ #eng  combine: 1m")
    upper_id = upper.stdout.split()[2].rstrip(":")
    assert stored(svc, upper_id).combine_seconds == 60

    plain = add_json(env, tmp_path)
    assert stored(svc, plain["id"]).combine_seconds is None

    lines = list_lines(env, tmp_path)
    assert lines[view["id"]].endswith("filters: any  security levels: none  combine: 30s")
    assert lines[upper_id].endswith("security levels: none  combine: 1m")
    assert lines[plain["id"]].endswith("security levels: none")
    as_json = json.loads(sub(env, tmp_path, "list", "--json").stdout)
    assert sorted(v["combine"] for v in as_json) == ["1m", "30s", "off"]


# -- subscriptions: digests -----------------------------------------------------------------


def test_add_with_a_daily_digest_is_stored_with_its_next_time_and_listed(
    env: dict[str, str], tmp_path: Path, svc: Services
) -> None:
    before = datetime.now(UTC)
    view = add_json(env, tmp_path, "--digest", BERLIN, "--project", "NOVA")
    after = datetime.now(UTC)
    assert view["digest"] == BERLIN
    assert view["digest_label"] == "Daily at 09:00 (Europe/Berlin)"
    assert view["combine"] == "off"

    row = stored(svc, view["id"])
    assert (row.digest, row.combine_seconds) == (BERLIN, None)
    next_at = as_utc(row.next_digest_at)
    # Nine in the morning in Berlin (07:00 or 08:00 UTC), the first one after the command.
    assert next_at.astimezone(ZoneInfo("Europe/Berlin")).time() == time(9, 0)
    assert before < next_at <= after + timedelta(days=1)
    assert view["next_digest_at"] == rfc3339(next_at)

    line = list_lines(env, tmp_path)[view["id"]]
    assert line.endswith(
        "filters: projects=NOVA  security levels: none"
        f"  digest: Daily at 09:00 (Europe/Berlin), next {rfc3339(next_at)}"
    )
    assert "combine:" not in line


def test_add_with_an_hourly_digest_goes_on_the_hour(
    env: dict[str, str], tmp_path: Path, svc: Services
) -> None:
    before = datetime.now(UTC)
    added = sub(env, tmp_path, "add", "--event-type", "issue_created", "--webhook", "#eng",
                "--digest", "Hourly", "--combine", "off")  # fmt: skip
    assert added.returncode == 0, added.stderr
    assert "digest: Hourly, on the hour, next " in added.stdout
    [row] = all_subscriptions(svc)
    assert (row.digest, row.combine_seconds) == ("hourly", None)
    next_at = as_utc(row.next_digest_at)
    assert (next_at.minute, next_at.second) == (0, 0)
    assert before < next_at <= before + timedelta(hours=1)


# -- subscriptions: update --------------------------------------------------------------------


def test_update_changes_only_what_is_given_and_is_audited(
    env: dict[str, str], tmp_path: Path, svc: Services
) -> None:
    view = add_json(env, tmp_path, "--project", "NOVA", "--security-level", "Staff only",
                    "--combine", "30s")  # fmt: skip
    sid = view["id"]

    five = sub(env, tmp_path, "update", sid, "--combine", "5m")
    assert five.returncode == 0, five.stderr
    assert five.stdout.strip().endswith(
        "filters: projects=NOVA  security levels: Staff only  combine: 5m"
    )
    row = stored(svc, sid)
    assert row.combine_seconds == 300
    assert row.filters["projects"] == ["NOVA"]
    assert row.filters["security_levels"] == ["Staff only"]

    # Levels alone: the combining window stays.
    levels = sub(env, tmp_path, "update", sid, "--any-security-level")
    assert levels.returncode == 0, levels.stderr
    row = stored(svc, sid)
    assert (row.combine_seconds, row.filters["security_levels"]) == (300, ["*"])

    # From combining to a digest in one command.
    to_digest = sub(env, tmp_path, "update", sid, "--combine", "off", "--digest", BERLIN, "--json")
    assert to_digest.returncode == 0, to_digest.stderr
    answer = json.loads(to_digest.stdout)
    assert (answer["combine"], answer["digest"]) == ("off", BERLIN)
    row = stored(svc, sid)
    assert (row.combine_seconds, row.digest) == (None, BERLIN)
    assert row.next_digest_at is not None
    assert row.filters["projects"] == ["NOVA"]

    off = sub(env, tmp_path, "update", sid, "--digest", "off")
    assert off.returncode == 0, off.stderr
    assert "digest:" not in off.stdout
    row = stored(svc, sid)
    assert (row.combine_seconds, row.digest, row.next_digest_at) == (None, None, None)
    assert list_lines(env, tmp_path)[sid].endswith("security levels: any")

    with svc.db.transaction() as session:
        details = session.scalars(
            select(AuditEntry.details)
            .where(AuditEntry.action == "teams.subscription.updated")
            .order_by(AuditEntry.seq)
        ).all()
    grouping = [{k: v for k, v in d.items() if k in ("combine", "digest")} for d in details]
    assert grouping == [
        {"combine": {"from": "30s", "to": "5m"}},
        {},
        {"combine": {"from": "5m", "to": "off"}, "digest": {"from": "off", "to": BERLIN}},
        {"digest": {"from": BERLIN, "to": "off"}},
    ]


# -- subscriptions: refusals ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "says"),
    [
        (["--combine", "2m"], "error: combine: use one of: off, 10s, 30s, 1m, 5m"),
        (["--digest", "weekly"], 'error: digest: use "hourly" or "daily@HH:MM/Area/City"'),
        (["--digest", "daily@25:00/Europe/Berlin"], "25:00 is not a time of day"),
        (["--digest", "daily@09:00/Mars/Olympus"], "'Mars/Olympus' is not a time zone"),
        (
            ["--combine", "30s", "--digest", "hourly"],
            "error: give --combine or --digest, not both: a digest already gathers every update",
        ),
    ],
)
def test_add_refuses_bad_grouping_in_one_line(
    env: dict[str, str], tmp_path: Path, svc: Services, options: list[str], says: str
) -> None:
    result = sub(env, tmp_path, "add", "--event-type", "issue_created", "--webhook", "#eng",
                 *options, "--json")  # fmt: skip
    assert_one_line_error(result, says)
    assert all_subscriptions(svc) == []


def test_update_refuses_a_grouping_that_clashes_with_the_saved_one(
    env: dict[str, str], tmp_path: Path, svc: Services
) -> None:
    combining = add_json(env, tmp_path, "--combine", "30s")["id"]
    digest = add_json(env, tmp_path, "--digest", "hourly")["id"]

    assert_one_line_error(
        sub(env, tmp_path, "update", combining, "--digest", "hourly"),
        "error: digest: this subscription combines updates within 30s, and a digest already "
        "gathers every update; add --combine off to send it as a digest",
    )
    assert_one_line_error(
        sub(env, tmp_path, "update", digest, "--combine", "10s"),
        "error: combine: this subscription is sent as a digest (Hourly, on the hour)",
    )
    assert_one_line_error(sub(env, tmp_path, "update", digest, "--combine", "soon"), "combine:")
    assert_one_line_error(
        sub(env, tmp_path, "update", combining, "--digest", "daily@9am/Europe/Berlin"), "digest:"
    )
    assert_one_line_error(
        sub(env, tmp_path, "update", combining, "--combine", "5m", "--digest", "hourly"),
        "error: give --combine or --digest, not both",
    )
    assert_one_line_error(
        sub(env, tmp_path, "update", combining),
        "error: give one of --security-level (repeatable), --any-security-level or "
        "--no-security-level, or --combine or --digest",
    )
    # Nothing changed, nothing audited.
    assert (stored(svc, combining).combine_seconds, stored(svc, combining).digest) == (30, None)
    assert (stored(svc, digest).combine_seconds, stored(svc, digest).digest) == (None, "hourly")
    with svc.db.transaction() as session:
        updates = session.scalars(
            select(AuditEntry).where(AuditEntry.action == "teams.subscription.updated")
        ).all()
    assert updates == []


def test_refusals_are_json_lines_in_json_log_format(
    env: dict[str, str], tmp_path: Path, svc: Services
) -> None:
    env = {**env, "TICKETMATE_LOG_FORMAT": "json"}
    result = sub(env, tmp_path, "add", "--event-type", "issue_created", "--webhook", "#eng",
                 "--digest", "daily@09:00/Nowhere/City")  # fmt: skip
    assert result.returncode == 1
    assert result.stdout == ""
    [line] = result.stderr.strip().splitlines()
    record = json.loads(line)
    assert record["level"] == "ERROR"
    assert record["msg"].startswith("digest: 'Nowhere/City' is not a time zone")
    assert all_subscriptions(svc) == []


# -- webhooks: storm control ----------------------------------------------------------------


def stored_storm(svc: Services, channel_name: str) -> int | None:
    with svc.db.transaction() as session:
        row = session.scalar(select(TeamsWebhook).where(TeamsWebhook.channel_name == channel_name))
        assert row is not None
        return row.storm_threshold


def test_storm_control_set_changed_and_turned_off(
    env: dict[str, str], tmp_path: Path, svc: Services
) -> None:
    added = teams(env, tmp_path, "webhook", "add", "--channel-name", "#ops", "--url-stdin",
                  "--storm", "40", "--json", stdin=OTHER_URL + "\n")  # fmt: skip
    assert added.returncode == 0, added.stderr
    assert json.loads(added.stdout)["storm_threshold"] == 40
    assert stored_storm(svc, "#ops") == 40
    assert stored_storm(svc, "#eng") is None

    listed = teams(env, tmp_path, "webhook", "list")
    assert listed.returncode == 0, listed.stderr
    lines = {line.split()[0]: line for line in listed.stdout.splitlines()}
    ops = json.loads(added.stdout)["id"]
    assert lines[ops].endswith("  storm: 40")
    assert [line for key, line in lines.items() if key != ops and "storm:" in line] == []

    changed = teams(env, tmp_path, "webhook", "update", "#OPS", "--storm", "100")
    assert changed.returncode == 0, changed.stderr
    assert changed.stdout.strip() == (
        f"updated webhook {ops} #ops: storm control above 100 waiting cards"
    )
    assert stored_storm(svc, "#ops") == 100

    off = teams(env, tmp_path, "webhook", "update", ops, "--storm", "off", "--json")
    assert off.returncode == 0, off.stderr
    assert json.loads(off.stdout)["storm_threshold"] is None
    assert stored_storm(svc, "#ops") is None
    assert "storm:" not in teams(env, tmp_path, "webhook", "list").stdout

    with svc.db.transaction() as session:
        details = session.scalars(
            select(AuditEntry.details)
            .where(AuditEntry.action == "teams.webhook.updated")
            .order_by(AuditEntry.seq)
        ).all()
    assert [d["storm_threshold"] for d in details] == [
        {"from": 40, "to": 100},
        {"from": 100, "to": None},
    ]


def test_storm_refusals_are_one_line(env: dict[str, str], tmp_path: Path, svc: Services) -> None:
    says = "error: storm_threshold: use a number of waiting cards from 5 to 1000, or off"
    for value in ("4", "1001", "lots"):
        refused = teams(env, tmp_path, "webhook", "update", "#eng", "--storm", value)
        assert_one_line_error(refused, says)
    add_args = ["add", "--channel-name", "#ops", "--url", OTHER_URL, "--storm", "0"]
    assert_one_line_error(teams(env, tmp_path, "webhook", *add_args), says)
    assert_one_line_error(
        teams(env, tmp_path, "webhook", "update", "#eng"),
        "error: nothing to change: give --storm N or --storm off",
    )
    assert_one_line_error(
        teams(env, tmp_path, "webhook", "update", "#nowhere", "--storm", "40"),
        "error: There is no such webhook in this workspace",
    )
    assert stored_storm(svc, "#eng") is None
    with svc.db.transaction() as session:
        names = session.scalars(select(TeamsWebhook.channel_name)).all()
    assert names == ["#eng"]
