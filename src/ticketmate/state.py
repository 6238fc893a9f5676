"""What one running service holds: settings, database and keyring, shared by API, UI and worker."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from fastapi import Request

from ticketmate.config import Settings
from ticketmate.db import Database
from ticketmate.routing.index import SubscriptionIndexCache
from ticketmate.security.crypto import Keyring
from ticketmate.workspaces.credentials_cache import CredentialsCache

if TYPE_CHECKING:
    from ticketmate.jira.intake_writer import IntakeWriter


@dataclass
class Services:
    settings: Settings
    db: Database
    keyring: Keyring
    extras: dict[str, object] = field(default_factory=dict)
    # The workspaces' compiled subscriptions, reused while their generation holds.
    subscription_index: SubscriptionIndexCache = field(default_factory=SubscriptionIndexCache)
    # The workspaces' decrypted Jira credentials, reused while their generation holds.
    jira_credentials: CredentialsCache = field(default_factory=CredentialsCache)
    # Stores the Jira events of many requests per transaction; runs while the app does.
    intake_writer: IntakeWriter | None = None


async def services(request: Request) -> Services:
    # async on purpose: FastAPI runs a plain `def` dependency in its thread pool, a thread hop
    # per request for an attribute read (it was a sixth of the intake's CPU under load).
    found: Services = request.app.state.services
    return found
