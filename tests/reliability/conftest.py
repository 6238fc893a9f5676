"""The reliability suite: faults against real `ticketmate` processes, a real database and the
local Teams stand-in. Sizes are small in `make test`; `make soak` runs them large
(TICKETMATE_TEST_SOAK=1)."""

from __future__ import annotations

import os

# The delivery tests' fixtures: a running Teams stand-in and the workspace `acme`.
from tests.delivery.conftest import sink, workspace

__all__ = ["sink", "workspace"]

SOAK = os.environ.get("TICKETMATE_TEST_SOAK", "") not in ("", "0")


def size(quick: int, soak: int) -> int:
    """How many events (or inputs) a fault test uses: `quick` in `make test`, `soak` in
    `make soak`."""
    return soak if SOAK else quick
