"""Two workspaces and their people, as in the Teams tests."""

from __future__ import annotations

import pytest

from tests.support.factories import bearer, make_user, make_workspace
from tests.teams.helpers import People
from ticketmate.state import Services


@pytest.fixture
def people(svc: Services) -> People:
    return People(
        acme=make_workspace(svc, "acme", "Acme Corp"),
        globex=make_workspace(svc, "globex"),
        admin=make_user(svc, "admin@acme.test", {"acme": "admin", "globex": "member"}),
        member=make_user(svc, "member@acme.test", {"acme": "member"}),
        outsider=make_user(svc, "admin@globex.test", {"globex": "admin"}),
    )


@pytest.fixture
def auth(people: People) -> dict[str, str]:
    return bearer(people.admin)
