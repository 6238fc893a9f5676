"""The workspace generation: every configuration change moves it, in the change's own
transaction, so that each process rebuilds its subscription index exactly when it must."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from tests.jira.support import payload, post_signed
from tests.support.factories import MadeUser, MadeWorkspace, bearer, make_user
from tests.support.processes import cli_env, run_cli
from tests.support.teams import (
    ADMIN,
    deliveries,
    drain,
    event,
    make_subscription,
    make_webhook,
    store_and_route,
)
from ticketmate.app import create_app
from ticketmate.db import Database
from ticketmate.dev.teams_sink import Answer, TeamsSink
from ticketmate.security.crypto import Keyring
from ticketmate.state import Services
from ticketmate.teams import subscriptions, webhooks
from ticketmate.workspaces.generation import current_generation

MM = "mattermost_mattermost-plugin-jira__"
ISSUE_CREATED = f"{MM}issue-created.json"  # TES-41, project TES
TEAMS = "/api/v1/workspaces/acme/teams"


def generation(svc: Services, workspace_id: str) -> int:
    with svc.db.transaction() as session:
        return current_generation(session, workspace_id)


def index_builds(svc: Services, workspace_id: str) -> int:
    """Ask the cache for the workspace's index as intake does; how many builds so far."""
    with svc.db.transaction() as session:
        svc.subscription_index.get(session, workspace_id, current_generation(session, workspace_id))
    return svc.subscription_index.builds


@pytest.fixture
def admin(svc: Services, workspace: MadeWorkspace) -> MadeUser:
    return make_user(svc, "admin@acme.test", {workspace.slug: "admin"})


def test_every_kind_of_change_moves_the_generation_and_rebuilds_the_index(
    svc: Services,
    workspace: MadeWorkspace,
    sink: TeamsSink,
    client: TestClient,
    admin: MadeUser,
) -> None:
    ws = workspace.id
    hook = make_webhook(svc, ws, "#eng", sink.url("/workflows/eng"))
    spare = make_webhook(svc, ws, "#spare", sink.url("/workflows/spare"))
    sub = make_subscription(svc, ws, hook, "issue_created")
    doomed = make_subscription(svc, ws, spare, "issue_created")

    def update_webhook(**fields: object) -> Callable[[], None]:
        def change() -> None:
            with svc.db.transaction() as session:
                webhooks.update_webhook(
                    session,
                    svc.keyring,
                    ws,
                    hook,
                    webhooks.WebhookUpdate(**fields),  # type: ignore[arg-type]
                    allow_loopback=True,
                    actor=ADMIN,
                )

        return change

    def update_subscription(**fields: object) -> Callable[[], None]:
        def change() -> None:
            with svc.db.transaction() as session:
                subscriptions.update_subscription(
                    session,
                    ws,
                    sub,
                    subscriptions.SubscriptionUpdate(**fields),  # type: ignore[arg-type]
                    actor=ADMIN,
                )

        return change

    def delete_subscription() -> None:
        with svc.db.transaction() as session:
            subscriptions.delete_subscription(session, ws, doomed, actor=ADMIN)

    def cascade_delete() -> None:
        make_subscription(svc, ws, spare, "comment_created")
        with svc.db.transaction() as session:
            webhooks.delete_webhook(session, ws, spare, cascade=True, actor=ADMIN)

    def regenerate(which: str) -> Callable[[], None]:
        def change() -> None:
            answer = client.post(
                f"/api/v1/workspaces/{workspace.slug}/jira/connection/regenerate",
                json={"which": which},
                headers=bearer(admin),
            )
            assert answer.status_code == 200, answer.text

        return change

    def through_the_api() -> None:
        answer = client.patch(
            f"{TEAMS}/subscriptions/{sub}", json={"enabled": True}, headers=bearer(admin)
        )
        assert answer.status_code == 200, answer.text

    changes: list[tuple[str, Callable[[], object], int]] = [
        ("create webhook", lambda: make_webhook(svc, ws, "#new", sink.url("/w/new")), 1),
        (
            "create subscription",
            lambda: make_subscription(svc, ws, hook, "status_changed"),
            1,
        ),
        ("rename channel", update_webhook(channel_name="#engineering"), 1),
        ("new URL", update_webhook(url=sink.url("/workflows/eng2")), 1),
        ("disable webhook", update_webhook(enabled=False), 1),
        ("enable webhook", update_webhook(enabled=True), 1),
        ("nothing changes", update_webhook(enabled=True), 0),
        ("disable subscription", update_subscription(enabled=False), 1),
        ("enable subscription through the API", through_the_api, 1),
        ("change filters", update_subscription(filters={"projects": ["OPS"]}), 1),
        ("change event type", update_subscription(event_type="issue_updated"), 1),
        ("delete subscription", delete_subscription, 1),
        # The added subscription and the cascade are two changes.
        ("cascade delete", cascade_delete, 2),
        ("regenerate secret", regenerate("secret"), 1),
        ("regenerate ingest token", regenerate("ingest_token"), 1),
    ]
    for name, change, moves in changes:
        before = generation(svc, ws)
        builds = index_builds(svc, ws)
        assert index_builds(svc, ws) == builds, f"rebuilt without a change, before {name}"
        change()
        assert generation(svc, ws) == before + moves, name
        assert index_builds(svc, ws) == builds + (1 if moves else 0), name


def test_the_worker_disabling_a_removed_channel_moves_the_generation(
    svc: Services, workspace: MadeWorkspace, sink: TeamsSink
) -> None:
    hook = make_webhook(svc, workspace.id, "#gone", sink.url("/workflows/gone"))
    make_subscription(svc, workspace.id, hook, "issue_created")
    sink.set_default("/workflows/gone", Answer(410, "Gone"))
    for n in range(3):
        store_and_route(svc, workspace.id, event(["issue_created"], key=f"DEMO-{n}"))
    svc.settings = svc.settings.model_copy(update={"channel_rate_per_second": 100})
    before = generation(svc, workspace.id)
    builds = index_builds(svc, workspace.id)
    drain(svc)
    assert generation(svc, workspace.id) == before + 1
    assert index_builds(svc, workspace.id) == builds + 1
    assert store_and_route(svc, workspace.id, event(["issue_created"]))[1] == 0


def test_deliveries_do_not_move_the_generation(
    svc: Services, workspace: MadeWorkspace, sink: TeamsSink
) -> None:
    """A webhook's health columns change with every delivery; routing does not depend on them."""
    hook = make_webhook(svc, workspace.id, "#eng", sink.url("/workflows/eng"))
    make_subscription(svc, workspace.id, hook, "issue_created")
    before = generation(svc, workspace.id)
    store_and_route(svc, workspace.id, event(["issue_created"]))
    drain(svc)
    assert [d.status for d in deliveries(svc, workspace.id)] == ["delivered"]
    assert generation(svc, workspace.id) == before


def test_intake_reuses_the_index_until_something_changes(
    svc: Services, workspace: MadeWorkspace, sink: TeamsSink, client: TestClient, admin: MadeUser
) -> None:
    hook = make_webhook(svc, workspace.id, "#eng", sink.url("/workflows/eng"))
    sub = make_subscription(svc, workspace.id, hook, "issue_created", projects=["TES"])
    builds = svc.subscription_index.builds
    for n in range(3):
        answer = post_signed(client, workspace, payload(ISSUE_CREATED), identifier=f"a{n}")
        assert answer.json()["deliveries"] == 1
    assert svc.subscription_index.builds == builds + 1
    answer = client.patch(
        f"{TEAMS}/subscriptions/{sub}",
        json={"filters": {"projects": ["OPS"]}},
        headers=bearer(admin),
    )
    assert answer.status_code == 200, answer.text
    assert post_signed(client, workspace, payload(ISSUE_CREATED)).json()["deliveries"] == 0
    assert svc.subscription_index.builds == builds + 2


# -- two processes ----------------------------------------------------------------------------


@pytest.fixture
def second(svc: Services) -> Iterator[Services]:
    """Another running service on the same database, with its own cache."""
    other = Services(
        settings=svc.settings,
        db=Database(svc.settings),
        keyring=Keyring(svc.settings.configured_keys),
    )
    try:
        yield other
    finally:
        other.db.dispose()


def test_a_change_made_by_another_service_applies_to_the_next_event(
    svc: Services,
    second: Services,
    workspace: MadeWorkspace,
    sink: TeamsSink,
    client: TestClient,
    admin: MadeUser,
) -> None:
    hook = make_webhook(svc, workspace.id, "#eng", sink.url("/workflows/eng"))
    sub = make_subscription(svc, workspace.id, hook, "issue_created", projects=["TES"])
    # This service's intake has the index in its cache.
    assert post_signed(client, workspace, payload(ISSUE_CREATED)).json()["deliveries"] == 1
    assert len(svc.subscription_index) == 1

    with TestClient(create_app(second.settings, services=second)) as other:
        changed = other.patch(
            f"{TEAMS}/subscriptions/{sub}", json={"enabled": False}, headers=bearer(admin)
        )
        assert changed.status_code == 200, changed.text
        assert post_signed(client, workspace, payload(ISSUE_CREATED)).json()["deliveries"] == 0

        added = other.post(
            f"{TEAMS}/subscriptions",
            json={
                "event_type": "issue_created",
                "webhook_id": hook,
                "filters": {"projects": ["tes"]},
            },
            headers=bearer(admin),
        )
        assert added.status_code == 201, added.text
        assert post_signed(client, workspace, payload(ISSUE_CREATED)).json()["deliveries"] == 1
    assert second.subscription_index.builds == 0  # the other service routed nothing itself


def test_a_change_made_by_another_os_process_applies_to_the_next_event(
    svc: Services,
    workspace: MadeWorkspace,
    sink: TeamsSink,
    client: TestClient,
    admin: MadeUser,
    database_url: str,
    tmp_path: Path,
) -> None:
    hook = make_webhook(svc, workspace.id, "#eng", sink.url("/workflows/eng"))
    sub = make_subscription(svc, workspace.id, hook, "issue_created", projects=["TES"])
    assert post_signed(client, workspace, payload(ISSUE_CREATED)).json()["deliveries"] == 1

    who = ["--workspace", workspace.slug, "--as", admin.email]
    removed = run_cli(
        ["teams", "subscription", "remove", sub, *who], cli_env(database_url), tmp_path
    )
    assert removed.returncode == 0, removed.stderr
    assert post_signed(client, workspace, payload(ISSUE_CREATED)).json()["deliveries"] == 0

    added = run_cli(
        [
            "teams",
            "subscription",
            "add",
            *who,
            "--event-type",
            "issue_created",
            "--webhook",
            "#eng",
        ],
        cli_env(database_url),
        tmp_path,
    )
    assert added.returncode == 0, added.stderr
    assert post_signed(client, workspace, payload(ISSUE_CREATED)).json()["deliveries"] == 1


def test_the_cache_holds_a_bounded_number_of_workspaces(svc: Services, sink: TeamsSink) -> None:
    from tests.support.factories import make_workspace
    from ticketmate.routing.index import SubscriptionIndexCache

    cache = SubscriptionIndexCache(max_workspaces=2)
    spaces = [make_workspace(svc, slug).id for slug in ("one", "two", "three")]
    for ws in spaces:
        make_subscription(
            svc, ws, make_webhook(svc, ws, "#eng", sink.url(f"/w/{ws}")), "issue_created"
        )

    def get(ws: str) -> None:
        with svc.db.transaction() as session:
            cache.get(session, ws, current_generation(session, ws))

    get(spaces[0])
    get(spaces[1])
    get(spaces[0])  # used again: now the most recent
    get(spaces[2])  # the least recently used, "two", makes room
    assert len(cache) == 2
    assert cache.builds == 3
    get(spaces[0])
    get(spaces[2])
    assert cache.builds == 3
    get(spaces[1])
    assert cache.builds == 4
