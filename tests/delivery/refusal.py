"""A real refusal by the database: a trigger that makes marking a delivery `delivered` fail,
on SQLite and on PostgreSQL alike (no mock of our database path)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import text

from ticketmate.state import Services


@contextmanager
def refuse_delivered(svc: Services, delivery_id: str | None = None) -> Iterator[None]:
    """While the block runs, an UPDATE that marks a delivery (this one, or any) delivered
    raises in the database, and the whole transaction it is in rolls back."""
    only = f" AND NEW.id = '{delivery_id}'" if delivery_id else ""
    with svc.db.engine.begin() as connection:
        if svc.db.dialect == "postgresql":
            connection.execute(
                text(
                    "CREATE OR REPLACE FUNCTION tm_test_refuse() RETURNS trigger AS $$ "
                    "BEGIN RAISE EXCEPTION 'refused for the test'; END $$ LANGUAGE plpgsql"
                )
            )
            connection.execute(
                text(
                    "CREATE TRIGGER tm_test_refuse BEFORE UPDATE ON integration_delivery_log "
                    f"FOR EACH ROW WHEN (NEW.status = 'delivered'{only}) "
                    "EXECUTE FUNCTION tm_test_refuse()"
                )
            )
        else:
            connection.execute(
                text(
                    "CREATE TRIGGER tm_test_refuse BEFORE UPDATE ON integration_delivery_log "
                    f"WHEN NEW.status = 'delivered'{only} "
                    "BEGIN SELECT RAISE(ABORT, 'refused for the test'); END"
                )
            )
    try:
        yield
    finally:
        lift_refusal(svc)


def lift_refusal(svc: Services) -> None:
    with svc.db.engine.begin() as connection:
        if svc.db.dialect == "postgresql":
            connection.execute(
                text("DROP TRIGGER IF EXISTS tm_test_refuse ON integration_delivery_log")
            )
        else:
            connection.execute(text("DROP TRIGGER IF EXISTS tm_test_refuse"))
