"""Two workspaces, their people, and a running stand-in for Teams."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.factories import bearer, make_user, make_workspace
from tests.teams.helpers import People
from ticketmate.dev.teams_sink import TeamsSink
from ticketmate.state import Services


@pytest.fixture
def people(svc: Services) -> People:
    acme = make_workspace(svc, "acme", "Acme Corp")
    globex = make_workspace(svc, "globex")
    return People(
        acme=acme,
        globex=globex,
        admin=make_user(svc, "admin@acme.test", {"acme": "admin"}),
        member=make_user(svc, "member@acme.test", {"acme": "member"}),
        outsider=make_user(svc, "admin@globex.test", {"globex": "admin"}),
    )


@pytest.fixture
def auth(people: People) -> dict[str, str]:
    return bearer(people.admin)


@pytest.fixture
def sink() -> Iterator[TeamsSink]:
    with TeamsSink() as running:
        yield running
