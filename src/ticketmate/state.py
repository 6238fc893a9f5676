"""What one running service holds: settings, database and keyring, shared by API, UI and worker."""

from __future__ import annotations

from dataclasses import dataclass, field

from fastapi import Request

from ticketmate.config import Settings
from ticketmate.db import Database
from ticketmate.security.crypto import Keyring


@dataclass
class Services:
    settings: Settings
    db: Database
    keyring: Keyring
    extras: dict[str, object] = field(default_factory=dict)


def services(request: Request) -> Services:
    found: Services = request.app.state.services
    return found
