"""The transformer as pure functions: raw dict in, outcome out; no database, no HTTP."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.jira.support import payload
from ticketmate.jira.adf import adf_to_text
from ticketmate.jira.events import EventType, JiraEvent
from ticketmate.jira.transform import (
    NO_ISSUE_NOTE,
    Ignored,
    Outcome,
    Rejected,
    Transformed,
    clean,
    site_base,
    transform,
)

MM = "mattermost_mattermost-plugin-jira__"
MT = "mobitel-ltd_jira-to-matrix__"


def routed(outcome: Outcome) -> JiraEvent:
    assert isinstance(outcome, Transformed), outcome
    return outcome.envelope


def types(outcome: Outcome) -> list[str]:
    return [t.value for t in routed(outcome).event_types]


def capture(name: str) -> dict[str, Any]:
    return payload(name)


def updated_issue(*items: dict[str, Any], type_name: str = "issue_generic") -> dict[str, Any]:
    body = capture(f"{MM}issue-updated-status-todo-to-inprogress.json")
    body["issue_event_type_name"] = type_name
    body["changelog"] = {"id": "1", "items": list(items)}
    return body


def item(
    field: str, old: str | None, new: str | None, field_id: str | None = None
) -> dict[str, Any]:
    found: dict[str, Any] = {"field": field, "fromString": old, "toString": new}
    if field_id is not None:
        found["fieldId"] = field_id
    return found


def automation_issue() -> dict[str, Any]:
    # The "Issue data (Jira format)" body of Automation's Send web request: a numeric id,
    # no webhookEvent, no timestamp, no user (from Atlassian's documentation example).
    return {
        "self": "https://sample.jira-dev.com/rest/api/2/issue/11111",
        "id": 11111,
        "key": "SP-53",
        "changelog": {"startAt": 0, "maxResults": 0, "total": 0, "histories": None},
        "fields": {
            "summary": "Printer on fire",
            "issuetype": {"id": 22222, "name": "[System] Service request", "subtask": False},
            "project": {"id": 10002, "key": "SP", "name": "New ITSM Project"},
            "status": {
                "name": "Waiting for support",
                "id": 10018,
                "statusCategory": {"key": "indeterminate", "name": "In Progress"},
            },
            "priority": {"name": "High", "id": 2},
            "assignee": None,
            "reporter": {"accountId": "abc", "displayName": "Zoë Ångström"},
            "description": "Smoke *everywhere*",
            "labels": ["hardware"],
            "components": [{"id": 1, "name": "Printers"}],
        },
    }


# ---------------------------------------------------------------------------------------------
# Event types of updates


def test_update_with_status_and_assignee_counts_as_both() -> None:
    body = updated_issue(
        item("status", "To Do", "Done", "status"), item("assignee", None, "Alice", "assignee")
    )
    assert types(transform(body)) == ["issue_updated", "status_changed", "issue_assigned"]


def test_update_with_every_kind_of_change_lists_each_once() -> None:
    body = updated_issue(
        item("priority", "Low", "High", "priority"),
        item("Status", "A", "B"),
        item("assignee", "Bob", "Alice"),
        item("status", "B", "C", "status"),
    )
    assert types(transform(body)) == [
        "issue_updated",
        "status_changed",
        "issue_assigned",
        "priority_changed",
    ]


@pytest.mark.parametrize(
    ("field", "field_id"),
    [("status", "status"), ("Status", None), ("STATUS", None), ("Статус", "status")],
)
def test_status_change_is_found_by_field_id_or_name(field: str, field_id: str | None) -> None:
    envelope = routed(transform(updated_issue(item(field, "To Do", "Done", field_id))))
    assert envelope.event_types == [EventType.ISSUE_UPDATED, EventType.STATUS_CHANGED]
    status = envelope.change("status")
    assert status is not None
    assert (status.from_, status.to, status.label) == ("To Do", "Done", field)


@pytest.mark.parametrize(
    "type_name", ["issue_resolved", "issue_closed", "issue_reopened", "issue_work_started"]
)
def test_server_workflow_event_types_with_a_status_item_are_status_changes(type_name: str) -> None:
    body = updated_issue(item("status", "Open", "Resolved"), type_name=type_name)
    assert types(transform(body)) == ["issue_updated", "status_changed"]


def test_a_field_called_status_in_a_custom_field_id_is_not_a_status_change() -> None:
    # fieldId wins over the display name: a custom field labelled "Status" is not the status.
    body = updated_issue(item("Status", "x", "y", "customfield_10100"))
    assert types(transform(body)) == ["issue_updated"]


def test_unassign_is_an_assignment_with_no_new_assignee() -> None:
    envelope = routed(transform(capture(f"{MM}issue-updated-unassigned.json")))
    assert EventType.ISSUE_ASSIGNED in envelope.event_types
    assignee = envelope.change("assignee")
    assert assignee is not None
    assert assignee.to is None


def test_display_strings_are_used_not_account_ids() -> None:
    body = updated_issue(
        {"field": "assignee", "fieldId": "assignee", "from": "acc-1", "fromString": "Bob",
         "to": "acc-2", "toString": "Alice"}
    )  # fmt: skip
    change = routed(transform(body)).changes[0]
    assert (change.field, change.from_, change.to) == ("assignee", "Bob", "Alice")


def test_raw_values_are_used_when_display_strings_are_missing() -> None:
    body = updated_issue({"field": "timeestimate", "from": 3600, "to": 1800})
    change = routed(transform(body)).changes[0]
    assert (change.from_, change.to) == ("3600", "1800")


def test_issue_created_is_only_issue_created_whatever_its_changelog() -> None:
    body = capture(f"{MM}issue-created.json")
    body["changelog"]["items"].append(item("assignee", None, "Alice", "assignee"))
    assert types(transform(body)) == ["issue_created"]


def test_issue_deleted() -> None:
    assert types(transform(capture(f"{MM}issue-deleted.json"))) == ["issue_deleted"]


@pytest.mark.parametrize(
    ("name", "expected"),
    [("jira:issue_created", "issue_created"), ("jira:issue_deleted", "issue_deleted")],
)
def test_server_issue_created_and_deleted(name: str, expected: str) -> None:
    # No Server capture of these exists; a Server issue payload (name/key users, no accountId,
    # no fieldId in the changelog) with the event name changed stands in for one.
    body = capture(f"{MM}server-issue-updated-issue-closed.json")
    body["webhookEvent"] = name
    body["issue_event_type_name"] = expected
    envelope = routed(transform(body))
    assert [t.value for t in envelope.event_types] == [expected]
    assert envelope.actor.name == "admin"
    assert envelope.actor.account_id is None
    assert envelope.issue is not None
    assert envelope.issue.browse_url == (
        "http://some-instance-test.centralus.cloudapp.azure.com:8080/browse/TES-4"
    )


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("issue_created", "issue_created"),
        ("jira:issue_created", "issue_created"),
        ("jira:comment_created", "comment_created"),
        ("comment_created", "comment_created"),
    ],
)
def test_the_jira_prefix_is_optional(name: str, expected: str) -> None:
    source = "issue-created.json" if "issue" in name else "cloud-comment-created.json"
    body = capture(f"{MM}{source}")
    body["webhookEvent"] = name
    assert types(transform(body)) == [expected]


# ---------------------------------------------------------------------------------------------
# Comments


@pytest.mark.parametrize(
    ("type_name", "expected"),
    [
        ("issue_commented", "comment_created"),
        ("issue_comment_edited", "comment_updated"),
        ("issue_comment_deleted", "comment_deleted"),
    ],
)
def test_server_comment_updates_are_only_comment_events(type_name: str, expected: str) -> None:
    body = capture(f"{MM}server-issue-updated-issue-commented.json")
    body["issue_event_type_name"] = type_name
    assert types(transform(body)) == [expected]


def test_server_comment_event_without_issue_says_it_has_no_project() -> None:
    envelope = routed(transform(capture(f"{MM}server-comment-created.json")))
    assert envelope.issue is None
    assert NO_ISSUE_NOTE in envelope.notes
    assert envelope.comment is not None
    assert envelope.comment.body == "unik"


def test_one_comment_reported_twice_has_one_dedupe_key() -> None:
    server_event = capture(f"{MM}server-comment-created.json")
    commented = capture(f"{MM}server-issue-updated-issue-commented.json")
    commented["comment"] = copy.deepcopy(server_event["comment"])
    first = routed(transform(server_event))
    second = routed(transform(commented))
    assert first.dedupe_key is not None
    assert first.dedupe_key == second.dedupe_key
    assert first.event_types == second.event_types == [EventType.COMMENT_CREATED]


def test_two_edits_of_one_comment_have_different_keys() -> None:
    first = capture(f"{MM}cloud-comment-updated.json")
    second = copy.deepcopy(first)
    second["comment"]["updated"] = "2019-02-15T19:13:00.000-0800"
    assert routed(transform(first)).dedupe_key != routed(transform(second)).dedupe_key
    created = routed(transform(capture(f"{MM}cloud-comment-created.json")))
    assert created.dedupe_key != routed(transform(first)).dedupe_key


def test_an_edit_without_its_time_is_never_deduplicated() -> None:
    body = capture(f"{MM}cloud-comment-updated.json")
    del body["comment"]["updated"]
    assert routed(transform(body)).dedupe_key is None


def test_same_comment_id_on_two_jira_sites_is_not_the_same_comment() -> None:
    first = capture(f"{MM}server-comment-created.json")
    second = copy.deepcopy(first)
    second["comment"]["self"] = "https://other.example/rest/api/2/issue/1/comment/10082"
    assert routed(transform(first)).dedupe_key != routed(transform(second)).dedupe_key


@pytest.mark.parametrize(
    ("visibility", "expected"),
    [
        ({"type": "role", "value": "Administrators"}, "Administrators"),
        ({"type": "group", "value": "jira-developers"}, "jira-developers"),
        ({"type": "group", "identifier": "abc-123"}, "abc-123"),
        (None, None),
    ],
)
def test_comment_visibility(visibility: dict[str, str] | None, expected: str | None) -> None:
    body = capture(f"{MM}cloud-comment-created.json")
    body["comment"]["visibility"] = visibility
    comment = routed(transform(body)).comment
    assert comment is not None
    assert comment.visibility == expected


def test_internal_service_management_comment_is_restricted() -> None:
    body = capture(f"{MM}cloud-comment-created.json")
    body["comment"]["jsdPublic"] = False
    comment = routed(transform(body)).comment
    assert comment is not None
    assert comment.visibility is not None
    assert "internal" in comment.visibility


def test_old_server_comment_update_without_event_type_is_a_comment() -> None:
    body = capture(f"{MM}server-issue-updated-issue-commented.json")
    del body["issue_event_type_name"]
    assert types(transform(body)) == ["comment_created"]
    body["comment"]["updated"] = "2019-06-28T21:40:00.000+0000"
    assert types(transform(body)) == ["comment_updated"]


def test_comment_event_without_comment_is_rejected() -> None:
    body = capture(f"{MM}cloud-comment-created.json")
    del body["comment"]
    outcome = transform(body)
    assert isinstance(outcome, Rejected)
    assert "without a comment" in outcome.reason


def test_comment_actor_is_the_author_or_the_editor() -> None:
    body = capture(f"{MM}cloud-comment-updated.json")
    body["comment"]["updateAuthor"] = {"displayName": "Editor", "accountId": "e-1"}
    assert routed(transform(body)).actor.display_name == "Editor"


# ---------------------------------------------------------------------------------------------
# Automation bodies


def test_automation_jira_format_is_an_update_with_a_numeric_id() -> None:
    envelope = routed(transform({"issue": automation_issue()}))
    assert envelope.event_types == [EventType.ISSUE_UPDATED]
    assert envelope.jira_event is None
    assert envelope.issue is not None
    assert envelope.issue.id == "11111"
    assert envelope.issue.key == "SP-53"
    assert envelope.issue.project_key == "SP"
    assert envelope.issue.reporter == "Zoë Ångström"
    assert envelope.issue.components == ["Printers"]
    assert envelope.issue.browse_url == "https://sample.jira-dev.com/browse/SP-53"
    assert envelope.occurred_at is None
    assert any("Automation" in note for note in envelope.notes)


def test_automation_format_has_the_issue_at_the_top_level() -> None:
    envelope = routed(transform(automation_issue()))
    assert envelope.issue is not None
    assert envelope.issue.key == "SP-53"
    assert envelope.issue.status_category == "indeterminate"


@pytest.mark.parametrize(
    ("event", "expected"),
    [
        ("issue_created", ["issue_created"]),
        ("status_changed", ["issue_updated", "status_changed"]),
        ("issue_assigned", ["issue_updated", "issue_assigned"]),
        ("priority_changed", ["issue_updated", "priority_changed"]),
        ("issue_deleted", ["issue_deleted"]),
        ("comment_created", ["comment_created"]),
        (" Issue_Updated ", ["issue_updated"]),
    ],
)
def test_automation_event_override(event: str, expected: list[str]) -> None:
    assert types(transform({"issue": automation_issue()}, event_override=event)) == expected


def test_unknown_override_is_rejected_with_the_choices() -> None:
    outcome = transform({"issue": automation_issue()}, event_override="issue_exploded")
    assert isinstance(outcome, Rejected)
    assert "issue_exploded" in outcome.reason
    assert "status_changed" in outcome.reason


def test_override_does_not_apply_to_bodies_with_webhook_event() -> None:
    outcome = transform(capture(f"{MM}issue-created.json"), event_override="issue_deleted")
    envelope = routed(outcome)
    assert envelope.event_types == [EventType.ISSUE_CREATED]
    assert any("?event=" in note for note in envelope.notes)


@pytest.mark.parametrize("body", [{}, {"hello": "world"}, {"issue": None}])
def test_automation_body_without_issue_is_rejected(body: dict[str, Any]) -> None:
    outcome = transform(body)
    assert isinstance(outcome, Rejected)
    assert "issue" in outcome.reason


# ---------------------------------------------------------------------------------------------
# Ignored events


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("worklog_created", "Worklog"),
        ("worklog_deleted", "Worklog"),
        ("attachment_created", "Attachment"),
        ("issuelink_created", "Issue link"),
        ("issue_property_set", "Issue property"),
        ("issue_property_deleted", "Issue property"),
        ("project_created", "Project"),
        ("jira:version_released", "Version"),
        ("sprint_started", "Sprint"),
        ("board_created", "Board"),
        ("user_created", "User"),
        ("filter_updated", "Filter"),
        ("option_voting_changed", "option"),
        ("something_new", "unknown Jira event"),
    ],
)
def test_non_issue_events_are_ignored_with_a_reason(name: str, reason: str) -> None:
    outcome = transform({"webhookEvent": name, "timestamp": 1})
    assert isinstance(outcome, Ignored)
    assert reason in outcome.reason
    assert outcome.jira_event == name


def test_worklog_updates_of_an_issue_are_ignored() -> None:
    body = updated_issue(item("timespent", "0", "3600"), type_name="issue_worklogged")
    outcome = transform(body)
    assert isinstance(outcome, Ignored)
    assert "Worklog" in outcome.reason


# ---------------------------------------------------------------------------------------------
# Wrong types, nulls, unknown keys


@pytest.mark.parametrize(
    ("mutate", "problem"),
    [
        (lambda b: b.__setitem__("issue", "TES-41"), "issue is a string, not an object"),
        (lambda b: b["issue"].__setitem__("fields", []), "issue.fields is an array"),
        (lambda b: b["issue"]["fields"].__setitem__("status", "Done"), "fields.status is a string"),
        (lambda b: b["issue"]["fields"].__setitem__("labels", "a,b"), "fields.labels is a string"),
        (lambda b: b["issue"]["fields"].__setitem__("summary", {"x": 1}), "summary is an object"),
        (lambda b: b["issue"]["fields"].__setitem__("priority", 3), "priority is a number"),
        (lambda b: b["changelog"].__setitem__("items", {}), "changelog.items is an object"),
        (lambda b: b["changelog"]["items"].append("x"), "changelog.items[1] is a string"),
        (lambda b: b.__setitem__("user", "admin"), "user is a string"),
        (lambda b: b.__setitem__("changelog", True), "changelog is a boolean"),
        (lambda b: b["issue"]["fields"].__setitem__("description", {"a": 1}), "Document Format"),
    ],
)
def test_wrong_types_are_rejected_with_a_reason(mutate: Any, problem: str) -> None:
    body = capture(f"{MM}issue-updated-status-todo-to-inprogress.json")
    mutate(body)
    outcome = transform(body)
    assert isinstance(outcome, Rejected), outcome
    assert problem in outcome.reason
    assert outcome.jira_event == "jira:issue_updated"


@pytest.mark.parametrize("value", [12, True, ["jira:issue_updated"], {"a": 1}])
def test_webhook_event_that_is_not_text_is_rejected(value: object) -> None:
    outcome = transform({"webhookEvent": value})
    assert isinstance(outcome, Rejected)
    assert "webhookEvent" in outcome.reason


def test_comment_that_is_a_string_is_rejected() -> None:
    body = capture(f"{MM}cloud-comment-created.json")
    body["comment"] = "Added a comment"
    outcome = transform(body)
    assert isinstance(outcome, Rejected)
    assert "comment is a string" in outcome.reason


def test_nulls_are_fine() -> None:
    body = capture(f"{MM}issue-updated-assigned.json")
    fields = body["issue"]["fields"]
    fields.update(priority=None, assignee=None, description=None, reporter=None, labels=None)
    fields.update(components=None, status=None, project=None)
    issue = routed(transform(body)).issue
    assert issue is not None
    assert (issue.priority, issue.assignee, issue.description) == (None, None, None)
    assert (issue.labels, issue.components, issue.status, issue.project_key) == ([], [], None, None)


def test_unknown_extra_keys_are_ignored() -> None:
    body = capture(f"{MM}issue-created.json")
    body.update(level="info", message="logged", label="x", somethingNew={"deep": [1, 2]})
    body["issue"]["fields"]["customfield_99999"] = {"anything": ["goes"]}
    body["issue"]["brandNewKey"] = 42
    assert types(transform(body)) == ["issue_created"]


def test_unicode_is_intact() -> None:
    envelope = routed(transform(capture(f"{MT}epic-created-cyrillic.json")))
    assert envelope.issue is not None
    assert envelope.issue.summary == "Тестовый эпик"
    dumped = envelope.as_json()
    assert dumped["issue"]["description"] == "Тестовый эпик"  # type: ignore[index]


# ---------------------------------------------------------------------------------------------
# Times, URLs, text


@pytest.mark.parametrize(
    ("timestamp", "expected"),
    [
        (1550286113023, datetime(2019, 2, 16, 3, 1, 53, 23000, tzinfo=UTC)),
        ("1550286113023", datetime(2019, 2, 16, 3, 1, 53, 23000, tzinfo=UTC)),
        (1550286113023.0, datetime(2019, 2, 16, 3, 1, 53, 23000, tzinfo=UTC)),
        ("2019-1-30 19:48:08,900", None),
        (True, None),
        (10**30, None),
        ("9" * 400, None),
        ([1], None),
    ],
)
def test_occurred_at(timestamp: object, expected: datetime | None) -> None:
    body = capture(f"{MM}issue-created.json")
    body["timestamp"] = timestamp
    envelope = routed(transform(body))
    assert envelope.occurred_at == expected
    assert (expected is None) == any("timestamp" in note for note in envelope.notes)


@pytest.mark.parametrize(
    ("self_url", "expected"),
    [
        ("https://x.atlassian.net/rest/api/2/issue/10040", "https://x.atlassian.net"),
        ("https://x.atlassian.net/rest/api/2/10021", "https://x.atlassian.net"),
        ("https://jira.example.ru/jira/rest/api/2/issue/1", "https://jira.example.ru/jira"),
        ("http://host:8080/rest/api/2/issue/1", "http://host:8080"),
        ("https://user:pw@host/rest/api/2/issue/1", None),  # never a link with credentials
        ("javascript:alert(1)", None),
        ("not a url", None),
        ("http://[::1", None),
        ("", None),
        (None, None),
    ],
)
def test_site_base(self_url: str | None, expected: str | None) -> None:
    assert site_base(self_url) == expected


def test_browse_url_never_comes_from_the_self_path() -> None:
    body = capture(f"{MM}issue-created.json")
    body["issue"]["self"] = "https://site.example/rest/api/2/10021"
    issue = routed(transform(body)).issue
    assert issue is not None
    assert issue.browse_url == "https://site.example/browse/TES-41"


def test_wiki_description_is_kept_as_is() -> None:
    body = capture(f"{MM}server-issue-updated-issue-comment-edited.json")
    issue = routed(transform(body)).issue
    assert issue is not None
    assert issue.description is not None
    assert issue.description.startswith("*Creating Quick Filters*\n\nYou can add")


def text(value: str) -> dict[str, Any]:
    return {"type": "text", "text": value}


def para(*content: dict[str, Any] | str) -> dict[str, Any]:
    return {"type": "paragraph", "content": [text(c) if isinstance(c, str) else c for c in content]}


def node(kind: str, *content: Any, **attrs: Any) -> dict[str, Any]:
    built: dict[str, Any] = {"type": kind, "content": list(content)}
    if attrs:
        built["attrs"] = attrs
    return built


ADF_DESCRIPTION = node(
    "doc",
    node("heading", text("Plan"), level=2),
    para(
        "Ask ",
        {"type": "mention", "attrs": {"id": "abc", "text": "@Zoë"}},
        {"type": "text", "text": " about it", "marks": [{"type": "strong"}]},
        {"type": "hardBreak"},
        "today ",
        {"type": "emoji", "attrs": {"shortName": ":fire:", "text": "🔥"}},
    ),
    node(
        "bulletList",
        node("listItem", para("one")),
        node("listItem", para("two"), node("orderedList", node("listItem", para("deep")), order=3)),
    ),
    node("codeBlock", text("print('hi')\nexit()")),
    {"type": "rule"},
    node("blockquote", para("quoted")),
    para(
        {"type": "inlineCard", "attrs": {"url": "https://example.com/x"}},
        " on ",
        {"type": "date", "attrs": {"timestamp": "1700000000000"}},
        " is ",
        {"type": "status", "attrs": {"text": "DONE", "color": "green"}},
    ),
    node("table", node("tableRow", node("tableHeader", para("a")), node("tableCell", para("b")))),
    node("mediaSingle", {"type": "media", "attrs": {"id": "x"}}),
    "garbage",
    {"type": "paragraph", "content": "not a list"},
    node("unknownFutureNode", text("still shown")),
)

ADF_TEXT = """Plan

Ask @Zoë about it
today 🔥

- one
- two
  3. deep

print('hi')
exit()

---

> quoted

https://example.com/x on 2023-11-14 is DONE

a | b

still shown"""


def test_adf_to_text() -> None:
    assert adf_to_text(ADF_DESCRIPTION) == ADF_TEXT


def test_adf_description_and_comment_body_become_plain_text() -> None:
    body = capture(f"{MM}cloud-comment-created.json")
    body["issue"]["fields"]["description"] = ADF_DESCRIPTION
    body["comment"]["body"] = node("doc", para("Looks good"))
    envelope = routed(transform(body))
    assert envelope.issue is not None
    assert envelope.issue.description == ADF_TEXT
    assert envelope.comment is not None
    assert envelope.comment.body == "Looks good"


def test_very_deep_adf_is_cut_not_crashed() -> None:
    deep = para("bottom")
    for _ in range(500):
        deep = node("blockquote", deep)
    assert "bottom" not in adf_to_text(node("doc", deep))


def test_clean_removes_what_databases_refuse() -> None:
    assert clean("a\x00b\ud800c") == "ab\ufffdc"


def test_nul_and_surrogates_never_reach_the_envelope() -> None:
    body = capture(f"{MM}issue-created.json")
    body["issue"]["fields"]["summary"] = "bad\x00 \udfff text"
    issue = routed(transform(body)).issue
    assert issue is not None
    assert issue.summary == "bad \ufffd text"


# ---------------------------------------------------------------------------------------------
# Never raises

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(), children),
    max_leaves=20,
)
EVENT_NAMES = st.sampled_from(
    [
        "jira:issue_created",
        "jira:issue_updated",
        "jira:issue_deleted",
        "comment_created",
        "comment_updated",
        "comment_deleted",
        "worklog_created",
    ]
)
TYPE_NAMES = st.sampled_from(
    ["issue_generic", "issue_assigned", "issue_commented", "issue_comment_edited", "issue_moved"]
)


@st.composite
def jira_shaped(draw: st.DrawFn) -> dict[str, Any]:
    """Payloads with Jira's keys and arbitrary values in them: the transformer's hard case."""
    fields = draw(
        st.dictionaries(
            st.sampled_from(
                [
                    *("summary", "status", "priority", "assignee", "labels", "components"),
                    *("project", "description", "issuetype", "reporter"),
                ]
            ),
            JSON,
        )
    )
    issue = draw(st.one_of(JSON, st.fixed_dictionaries({"key": JSON, "self": JSON}).map(
        lambda d: {**d, "fields": fields}
    )))  # fmt: skip
    body: dict[str, Any] = {
        "webhookEvent": draw(st.one_of(EVENT_NAMES, JSON)),
        "issue_event_type_name": draw(st.one_of(TYPE_NAMES, JSON)),
        "timestamp": draw(JSON),
        "issue": issue,
        "user": draw(JSON),
        "comment": draw(st.one_of(JSON, st.fixed_dictionaries({"id": JSON, "body": JSON}))),
        "changelog": draw(
            st.one_of(JSON, st.fixed_dictionaries({"items": st.lists(JSON, max_size=3)}))
        ),
    }
    for key in draw(st.sets(st.sampled_from(sorted(body)))):
        del body[key]
    return body


@settings(max_examples=100, deadline=None)
@given(st.dictionaries(st.text(), JSON), st.one_of(st.none(), st.text()))
def test_arbitrary_objects_never_raise(body: dict[str, Any], override: str | None) -> None:
    outcome = transform(body, event_override=override)
    assert outcome.status in ("routed", "ignored", "rejected")


@settings(max_examples=200, deadline=None)
@given(jira_shaped(), st.one_of(st.none(), st.sampled_from(["status_changed", "nope"])))
def test_jira_shaped_payloads_never_raise(body: dict[str, Any], override: str | None) -> None:
    outcome = transform(body, event_override=override)
    if isinstance(outcome, Transformed):
        # Whatever was read can be stored as JSON and read back as the same envelope.
        assert JiraEvent.model_validate(outcome.envelope.as_json()) == outcome.envelope
