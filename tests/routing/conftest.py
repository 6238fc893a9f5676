from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.factories import MadeWorkspace, make_workspace
from ticketmate.dev.teams_sink import TeamsSink
from ticketmate.state import Services


@pytest.fixture
def sink() -> Iterator[TeamsSink]:
    with TeamsSink() as running:
        yield running


@pytest.fixture
def workspace(svc: Services) -> MadeWorkspace:
    return make_workspace(svc, "acme")
