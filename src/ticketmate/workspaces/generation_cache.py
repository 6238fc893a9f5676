"""What a process keeps per workspace while the workspace's configuration generation holds.

Both the subscription index and the decrypted Jira credentials are valid exactly as long as the
workspace's `config_generation` (workspaces/generation.py) has not moved on, so both keep their
values here: workspace id → (generation, value), the least recently used dropped first.

Thread-safe. Building a value happens outside the lock (it may read the database or decrypt),
so two threads may build the same value at once; the one under the newer generation is kept.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Generic, TypeVar

T = TypeVar("T")


class GenerationCache(Generic[T]):
    def __init__(self, max_workspaces: int) -> None:
        self.max_workspaces = max_workspaces
        self._lock = threading.Lock()
        self._entries: OrderedDict[str, tuple[int, T]] = OrderedDict()

    def lookup(self, workspace_id: str, generation: int) -> T | None:
        """The value kept for the workspace under exactly this generation, if any."""
        with self._lock:
            cached = self._entries.get(workspace_id)
            if cached is None or cached[0] != generation:
                return None
            self._entries.move_to_end(workspace_id)
            return cached[1]

    def keep(self, workspace_id: str, generation: int, value: T) -> None:
        """Keep `value` unless a value of a newer generation is already kept."""
        with self._lock:
            current = self._entries.get(workspace_id)
            if current is not None and current[0] > generation:
                return
            self._entries[workspace_id] = (generation, value)
            self._entries.move_to_end(workspace_id)
            while len(self._entries) > self.max_workspaces:
                self._entries.popitem(last=False)

    def forget(self, workspace_id: str) -> None:
        with self._lock:
            self._entries.pop(workspace_id, None)

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)
