"""What `ticketmate serve` needs beyond the app: the schema check and the background parts."""

from __future__ import annotations

from alembic.runtime.migration import MigrationContext

from ticketmate.app import BackgroundPart
from ticketmate.errors import CommandError
from ticketmate.migrate import head_revision
from ticketmate.state import Services


def require_schema_at_head(svc: Services) -> None:
    with svc.db.engine.connect() as connection:
        current = MigrationContext.configure(connection).get_current_revision()
    if current != head_revision():
        raise CommandError(
            "the database schema is not up to date; run `ticketmate db upgrade` first"
        )


def background_parts(with_worker: bool) -> list[BackgroundPart]:
    from ticketmate.delivery.embedded import start_embedded_worker

    return [start_embedded_worker] if with_worker else []
