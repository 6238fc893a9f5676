"""The reliability suite: faults against real `ticketmate` processes, a real database and the
local Teams stand-in. Sizes are small in `make test`; `make soak` runs them large
(TICKETMATE_TEST_SOAK=1)."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.support.factories import MadeWorkspace, make_workspace
from ticketmate.dev.teams_sink import TeamsSink
from ticketmate.state import Services

SOAK = os.environ.get("TICKETMATE_TEST_SOAK", "") not in ("", "0")


def size(quick: int, soak: int) -> int:
    """How many events (or inputs) a fault test uses: `quick` in `make test`, `soak` in
    `make soak`."""
    return soak if SOAK else quick


@pytest.fixture
def sink() -> Iterator[TeamsSink]:
    with TeamsSink() as running:
        yield running


@pytest.fixture
def workspace(svc: Services) -> MadeWorkspace:
    return make_workspace(svc, "acme")
