"""Opaque, time-ordered identifiers: newest-first lists can sort on the id alone."""

from __future__ import annotations

import os
import threading
import time
from datetime import datetime

_lock = threading.Lock()
_last = 0


def new_id() -> str:
    """A 26-character id: 48 bits of milliseconds, then 80 random bits, in Crockford base32.

    Ids made by one process are strictly increasing, so ordering by id is ordering by creation.
    """
    global _last
    with _lock:
        value = (int(time.time() * 1000) << 80) | int.from_bytes(os.urandom(10), "big")
        if value <= _last:
            value = _last + 1
        _last = value
    return _encode(value)


def id_floor(moment: datetime) -> str:
    """The smallest id made at `moment`, so `id >= id_floor(t)` selects rows made since t."""
    return _encode(int(moment.timestamp() * 1000) << 80)


_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"


def _encode(value: int) -> str:
    chars = []
    for _ in range(26):
        chars.append(_ALPHABET[value & 31])
        value >>= 5
    return "".join(reversed(chars))
