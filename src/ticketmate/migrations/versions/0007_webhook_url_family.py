"""each Teams webhook's URL family: whether Microsoft still honours its URL

`teams_webhooks.url_family` is filled from `url_masked`, which keeps the URL's scheme and host
(nothing is decrypted): `power_platform` (Workflows on *.environment.api.powerplatform.com),
`logic_apps` (Workflows on *.logic.azure.com, retired on 30 November 2025), `connector`
(*.webhook.office.com and outlook.office.com, retiring during 2026), `loopback` (local
stand-ins) and `unknown` (a host none of these).

The classification is copied here from security/urls.py as it was when this revision was
written, so that the revision does the same whatever the package later becomes (a test keeps
the two in step).

Downgrade drops the column.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-04 10:02:47.118305
"""

import ipaddress
import re
from collections.abc import Sequence
from urllib.parse import urlsplit

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BATCH = 500

webhooks = sa.table(
    "teams_webhooks",
    sa.column("id", sa.String),
    sa.column("url_masked", sa.String),
    sa.column("url_family", sa.String),
)

_LABEL = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")


def _is_under(host: str, domain: str) -> bool:
    if not host.endswith("." + domain):
        return False
    return all(_LABEL.match(label) for label in host[: -len(domain) - 1].split("."))


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def family_of_masked(masked: str | None) -> str:
    """The family of a masked URL (`https://host/…Xk3Q`), from its host."""
    try:
        host = (urlsplit((masked or "").strip()).hostname or "").lower()
    except ValueError:
        return "unknown"
    if not host:
        return "unknown"
    if _is_loopback(host):
        return "loopback"
    if _is_under(host, "environment.api.powerplatform.com"):
        return "power_platform"
    if _is_under(host, "logic.azure.com"):
        return "logic_apps"
    if _is_under(host, "webhook.office.com") or host == "outlook.office.com":
        return "connector"
    return "unknown"


def upgrade() -> None:
    # ADD COLUMN works in place on both databases; with a default, NOT NULL holds at once.
    op.add_column(
        "teams_webhooks",
        sa.Column("url_family", sa.String(length=16), server_default="unknown", nullable=False),
    )
    connection = op.get_bind()
    after = ""
    while True:
        rows = connection.execute(
            sa.select(webhooks.c.id, webhooks.c.url_masked)
            .where(webhooks.c.id > after)
            .order_by(webhooks.c.id)
            .limit(BATCH)
        ).all()
        if not rows:
            return
        for webhook_id, masked in rows:
            family = family_of_masked(masked)
            if family != "unknown":
                connection.execute(
                    sa.update(webhooks).where(webhooks.c.id == webhook_id).values(url_family=family)
                )
        after = rows[-1][0]


def downgrade() -> None:
    # In place, not in batch mode: on SQLite a batch copies the table and drops the old one,
    # and with foreign keys on, every delivery and subscription of a webhook would go with it.
    if op.get_bind().dialect.name == "sqlite":
        op.execute('ALTER TABLE "teams_webhooks" DROP COLUMN "url_family"')
    else:
        op.drop_column("teams_webhooks", "url_family")
