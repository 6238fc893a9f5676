"""Every captured payload in tests/fixtures/jira-payloads goes through the endpoint, signed.

Each file has its expectation here: the stored status, and the envelope fields that matter
for it (event types, issue, changes, comment, actor, time). A file without an expectation
fails the suite, so new captures cannot slip in untested.
"""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.jira.support import payload_bytes, payload_names, post_signed, stored
from tests.support.factories import MadeWorkspace
from ticketmate.jira.transform import NO_ISSUE_NOTE
from ticketmate.state import Services

MM = "mattermost_mattermost-plugin-jira__"
MT = "mobitel-ltd_jira-to-matrix__"
CLOUD = "https://some-instance-test.atlassian.net"
SERVER = "http://some-instance-test.centralus.cloudapp.azure.com:8080"
TIMESTAMP_NOTE = "The payload's timestamp is not epoch milliseconds, so occurred_at is unknown."

TES_41 = {
    "id": "10040",
    "key": "TES-41",
    "summary": "Unit test summary 1",
    "project_key": "TES",
    "project_name": "test1",
    "issue_type": "Story",
    "browse_url": f"{CLOUD}/browse/TES-41",
}
TES_4 = {
    "id": "10300",
    "key": "TES-4",
    "summary": "Unit test summary 1",
    "project_key": "TES",
    "project_name": "Mattermost TEST",
    "issue_type": "Bug",
    "priority": "Medium",
    "browse_url": f"{SERVER}/browse/TES-4",
}
TEST_USER = {"display_name": "Test User", "account_id": "5c5f880629be9642ba529340"}
SERVER_ADMIN = {"display_name": "Test User", "account_id": None, "name": "admin"}


def change(field: str, old: str | None, new: str | None) -> dict[str, Any]:
    return {"field": field, "from": old, "to": new}


# file → (status, expected subset of the envelope, or the reason for ignored events)
EXPECTED: dict[str, tuple[str, dict[str, Any] | str]] = {
    f"{MM}cloud-comment-created.json": (
        "routed",
        {
            "event_types": ["comment_created"],
            "jira_event": "comment_created",
            "occurred_at": "2019-02-16T03:11:18.321Z",
            # Cloud comment events carry a trimmed issue: no description, no reporter.
            "issue": {**TES_41, "status": "To Do", "priority": "High", "description": None},
            "comment": {"id": "10019", "author": "Test User", "body": "Added a comment"},
            "actor": TEST_USER,
            "changes": [],
        },
    ),
    f"{MM}cloud-comment-deleted.json": (
        "routed",
        {
            "event_types": ["comment_deleted"],
            "issue": {
                "key": "KT-7",
                "project_key": "KT",
                "assignee": "Test User",
                # The capture's issue.self is the malformed recent-Cloud form (no /issue/).
                "browse_url": "https://mmtest.atlassian.net/browse/KT-7",
            },
            "comment": {"id": "10757", "body": "wd\n\ndwd", "visibility": None},
            # Who deleted a comment is not in the payload.
            "actor": {"display_name": None},
        },
    ),
    f"{MM}cloud-comment-updated.json": (
        "routed",
        {
            "event_types": ["comment_updated"],
            "issue": TES_41,
            "comment": {"id": "10019", "body": "Added a comment, then edited it"},
            "actor": {"display_name": "Test User"},
        },
    ),
    f"{MM}cloud-issue-created-many-fields.json": (
        "routed",
        {
            # Only issue_created, although the changelog holds assignee and priority items.
            "event_types": ["issue_created"],
            "issue_event_type_name": "issue_created",
            "issue": {
                "key": "KT-22",
                "summary": "Lots of fields selected",
                "assignee": "Sample User",
                "reporter": "Sample User",
                "labels": ["Label1", "Label2"],
                "priority": "Medium",
                "description": "The good description",
            },
            "changes": [
                {**change("assignee", None, "Sample User"), "label": "assignee"},
                {**change("customfield_10073", None, "1"), "label": "MJK - Radio Buttons"},
                {**change("customfield_10076", None, "1"), "label": "MJK - Select List 3"},
                change("description", None, "The good description"),
                {**change("fixversions", None, "d"), "label": "Fix Version"},
                change("priority", None, "Medium"),
                change("reporter", None, "Sample User"),
                {**change("status", None, "To Do"), "label": "Status"},
                change("summary", None, "Lots of fields selected"),
            ],
            "actor": {"display_name": "Sample User", "name": "sample.user"},
        },
    ),
    f"{MM}issue-assigned-empty-changelog.json": (
        "routed",
        {
            # issue_assigned with no changelog item (API assignment) is still an assignment.
            "event_types": ["issue_updated", "issue_assigned"],
            "issue": {"key": "TEST-123", "assignee": "John Doe"},
            "changes": [],
            "actor": {"display_name": "Admin User", "account_id": "123456"},
        },
    ),
    f"{MM}issue-created-no-description.json": (
        "routed",
        {
            "event_types": ["issue_created"],
            "issue": {
                **TES_41,
                "summary": "Unit test summary",
                "description": None,
                "assignee": None,
                "labels": ["test-label"],
                "components": ["COMP-1"],
            },
        },
    ),
    f"{MM}issue-created.json": (
        "routed",
        {
            "event_types": ["issue_created"],
            "occurred_at": "2019-02-16T03:01:53.023Z",
            "issue": {
                **TES_41,
                "summary": "Unit test summary",
                "status": "To Do",
                "status_category": "new",
                "priority": "High",
                "reporter": "Test User",
                "description": "Unit test description, not that long",
            },
            "actor": TEST_USER,
        },
    ),
    f"{MM}issue-deleted.json": (
        "routed",
        {
            "event_types": ["issue_deleted"],
            "jira_event": "jira:issue_deleted",
            "issue": {"key": "IDT-19", "summary": "hey", "project_name": "Issue Dialog Testing"},
        },
    ),
    f"{MM}issue-updated-assigned.json": (
        "routed",
        {
            "event_types": ["issue_updated", "issue_assigned"],
            "issue": {**TES_41, "assignee": "Test User"},
            "changes": [change("assignee", None, "Test User")],
        },
    ),
    f"{MM}issue-updated-labels.json": (
        "routed",
        {
            # A labels change is an update and nothing more.
            "event_types": ["issue_updated"],
            "issue": {**TES_41, "labels": ["sad", "test-label"]},
            "changes": [change("labels", "bad test-label", "sad test-label")],
        },
    ),
    f"{MM}issue-updated-priority-raised.json": (
        "routed",
        {
            "event_types": ["issue_updated", "priority_changed"],
            "issue": {**TES_41, "priority": "High"},
            "changes": [change("priority", "Low", "High")],
        },
    ),
    f"{MM}issue-updated-status-resolved.json": (
        "routed",
        {
            "event_types": ["issue_updated", "status_changed"],
            "issue_event_type_name": "issue_generic",
            "issue": {**TES_41, "status": "Done", "status_category": "done"},
            "changes": [
                change("resolution", None, "Done"),
                change("status", "In Progress", "Done"),
            ],
        },
    ),
    f"{MM}issue-updated-status-todo-to-inprogress.json": (
        "routed",
        {
            "event_types": ["issue_updated", "status_changed"],
            "issue": {**TES_41, "status": "In Progress", "status_category": "indeterminate"},
            "changes": [change("status", "To Do", "In Progress")],
        },
    ),
    f"{MM}issue-updated-unassigned.json": (
        "routed",
        {
            # Unassigning (toString null) counts as issue_assigned too.
            "event_types": ["issue_updated", "issue_assigned"],
            "issue": {**TES_41, "assignee": None},
            "changes": [change("assignee", "Test User", None)],
        },
    ),
    f"{MM}server-comment-created.json": (
        "routed",
        {
            "event_types": ["comment_created"],
            # Server comment events carry no issue: no project, and the envelope says so.
            "issue": None,
            "notes": [NO_ISSUE_NOTE],
            "comment": {"id": "10082", "author": "Lev Brouk", "body": "unik"},
            "actor": {"display_name": "Lev Brouk", "name": "levbrouk", "account_id": None},
        },
    ),
    f"{MM}server-issue-updated-issue-closed.json": (
        "routed",
        {
            "event_types": ["issue_updated", "status_changed"],
            "issue_event_type_name": "issue_closed",
            "issue": {**TES_4, "status": "Closed", "status_category": "done"},
            # Server items have no fieldId: matched on the field name.
            "changes": [{**change("status", "Resolved", "Closed"), "label": "status"}],
            "actor": SERVER_ADMIN,
        },
    ),
    f"{MM}server-issue-updated-issue-comment-edited.json": (
        "routed",
        {
            "event_types": ["comment_updated"],
            "jira_event": "jira:issue_updated",
            "issue_event_type_name": "issue_comment_edited",
            "issue": {
                "key": "PRJX-14",
                "project_key": "PRJX",
                "browse_url": "http://sales-jira.centralus.cloudapp.azure.com:8080/browse/PRJX-14",
            },
            "comment": {"id": "10084", "body": "and higher eeven higher"},
        },
    ),
    f"{MM}server-issue-updated-issue-commented.json": (
        "routed",
        {
            "event_types": ["comment_created"],
            "issue_event_type_name": "issue_commented",
            "issue": {"key": "PRJA-42", "summary": "test for notifications"},
            "comment": {
                "id": "10118",
                "body": "This is a test comment. We should act on it right away.",
            },
            "actor": {"name": "TestUser"},
        },
    ),
    f"{MM}server-issue-updated-issue-reopened.json": (
        "routed",
        {
            "event_types": ["issue_updated", "status_changed"],
            "issue_event_type_name": "issue_reopened",
            "issue": {**TES_4, "status": "Reopened"},
            "changes": [
                change("resolution", "Done", None),
                change("status", "Resolved", "Reopened"),
            ],
        },
    ),
    f"{MM}server-issue-updated-issue-resolved.json": (
        "routed",
        {
            "event_types": ["issue_updated", "status_changed"],
            "issue_event_type_name": "issue_resolved",
            "issue": {**TES_4, "status": "Resolved", "description": None, "assignee": None},
            "changes": [
                change("status", "In Progress", "Resolved"),
                change("resolution", None, "Done"),
            ],
        },
    ),
    f"{MM}server-issue-updated-issue-work-started.json": (
        "routed",
        {
            "event_types": ["issue_updated", "status_changed"],
            "issue_event_type_name": "issue_work_started",
            "issue": {**TES_4, "status": "In Progress", "status_category": "indeterminate"},
            "changes": [change("status", "Reopened", "In Progress")],
        },
    ),
    f"{MM}server-old-issue-updated-no-event-type-assigned.json": (
        "routed",
        {
            "event_types": ["issue_updated", "issue_assigned"],
            "issue_event_type_name": None,
            "issue": {**TES_41, "assignee": "Test User"},
            "changes": [change("assignee", None, "Test User")],
        },
    ),
    f"{MT}comment-created-no-issue.json": (
        "routed",
        {
            "event_types": ["comment_created"],
            "issue": None,
            "notes": [NO_ISSUE_NOTE],
            "occurred_at": "2017-11-30T09:28:04.304Z",
            "comment": {"id": "31039", "body": "12345"},
        },
    ),
    f"{MT}epic-created-cyrillic.json": (
        "routed",
        {
            "event_types": ["issue_created"],
            # The logger's string timestamp is not epoch ms: unknown, and said so.
            "occurred_at": None,
            "notes": [TIMESTAMP_NOTE],
            "issue": {
                "key": "DTP-1",
                "summary": "Тестовый эпик",
                "description": "Тестовый эпик",
                "issue_type": "Epic",
                "assignee": "Иванов Иван Иванович",
                "browse_url": "https://jira.test-example.ru/browse/DTP-1",
            },
            # "Статус" matched through its fieldId.
            "changes": [
                change("description", None, "Тестовый эпик"),
                change("priority", None, "Medium"),
                change("reporter", None, "Jira Test"),
                {**change("status", None, "To Do"), "label": "Статус"},
                change("summary", None, "Тестовый эпик"),
            ],
        },
    ),
    f"{MT}issue-updated-issue-assigned-cyrillic.json": (
        "routed",
        {
            "event_types": ["issue_updated", "issue_assigned"],
            "issue": {
                "key": "INDEV-242",
                "summary": "Тестовая задача",
                "assignee": "Иванов Иван Иванович",
                "description": None,
            },
            "changes": [change("assignee", None, "Иванов Иван Иванович")],
        },
    ),
    f"{MT}issue-updated-issue-moved.json": (
        "routed",
        {
            # Moved between projects: the key and project are the new ones; status moved too.
            "event_types": ["issue_updated", "status_changed"],
            "issue_event_type_name": "issue_moved",
            "issue": {
                "key": "INDEV-130",
                "project_key": "INDEV",
                "project_name": "Internal Development",
                "issue_type": "Story",
                "browse_url": "https://jira.test-example.ru/browse/INDEV-130",
            },
            "changes": [
                change("issuetype", "Task", "Story"),
                change("project", "Test Classic Project", "Internal Development"),
                change("status", "Backlog", "To Do"),
                {
                    **change(
                        "workflow",
                        "Software Simplified Workflow for Project TCP",
                        "Software Simplified Workflow for Project INDEV",
                    ),
                    "label": "Workflow",
                },
                {**change("key", "TCP-2", "INDEV-130"), "label": "Key"},
            ],
        },
    ),
    f"{MT}issue-updated-status-changed.json": (
        "routed",
        {
            "event_types": ["issue_updated", "status_changed"],
            "issue": {
                "key": "INDEV-6",
                "summary": "Prueba de creación de tareas en un proyecto público",
                "reporter": "Петров Петр Петрович",
                "priority": "Highest",
            },
            "changes": [change("status", "To Do", "In Progress")],
        },
    ),
    f"{MT}issuelink-created.json": ("ignored", "Issue link events"),
    f"{MT}issuelink-deleted.json": ("ignored", "Issue link events"),
    f"{MT}project-created.json": ("ignored", "Project events are not about one issue"),
}


def assert_subset(actual: Any, expected: Any, path: str = "envelope") -> None:
    """Every key of `expected` is in `actual` with that value; lists compare element-wise."""
    if isinstance(expected, dict):
        assert isinstance(actual, dict), f"{path}: {actual!r}"
        for key, value in expected.items():
            assert key in actual, f"{path}.{key} missing"
            assert_subset(actual[key], value, f"{path}.{key}")
    elif isinstance(expected, list):
        assert isinstance(actual, list), f"{path}: {actual!r}"
        assert len(actual) == len(expected), f"{path}: {actual!r}"
        for index, (a, e) in enumerate(zip(actual, expected, strict=True)):
            assert_subset(a, e, f"{path}[{index}]")
    else:
        assert actual == expected, f"{path}: {actual!r} != {expected!r}"


def test_every_capture_has_an_expectation() -> None:
    assert sorted(EXPECTED) == payload_names()
    assert len(EXPECTED) == 30


@pytest.mark.parametrize("name", payload_names())
def test_capture_through_the_endpoint(
    client: TestClient, svc: Services, workspace: MadeWorkspace, name: str
) -> None:
    status, expected = EXPECTED[name]
    body = payload_bytes(name)
    response = post_signed(client, workspace, body, identifier=f"id-{name}")
    assert response.status_code == 202, response.text
    answer = response.json()
    assert answer["deliveries"] == 0
    record = stored(svc, answer["event_id"])
    assert record.status == status, record.reason
    assert record.jira_event_id == f"id-{name}"
    assert record.raw_body == body.decode()  # stored byte for byte (Cyrillic intact)
    if status == "ignored":
        assert isinstance(expected, str)
        assert record.reason is not None
        assert expected in record.reason
        assert record.envelope is None
        assert record.event_types == []
        return
    assert isinstance(expected, dict)
    assert record.envelope is not None
    assert_subset(record.envelope, expected)
    assert record.envelope["jira_event_id"] == f"id-{name}"
    assert record.event_types == record.envelope["event_types"]
    issue = record.envelope["issue"]
    assert record.issue_key == (issue["key"] if issue else None)
    assert record.summary == (issue["summary"] if issue else None)
