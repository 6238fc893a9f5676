"""Settings: the one place the service reads its configuration (environment prefix TICKETMATE_)."""

from __future__ import annotations

import base64
import binascii
import ipaddress
from functools import cached_property
from pathlib import Path
from typing import Annotated

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

DEFAULT_DATABASE_URL = "sqlite:///var/ticketmate.db"
DEFAULT_RETRY_SCHEDULE = (10.0, 30.0, 120.0, 600.0, 1800.0, 3600.0, 7200.0)


# The example of TICKETMATE_ENCRYPTION_KEYS in .env.example and docs/configuration.md: plainly not a
# key (not base64 of 32 bytes), and refused by name. The example published before it was
# a working key that anyone can read; it is refused as the encrypting key too.
ENCRYPTION_KEYS_PLACEHOLDER = "replace-me:REPLACE+ME+with+the+output+of+ticketmate+keys+generate"
_PUBLISHED_EXAMPLE_KEY = base64.b64decode("REPLACE+ME+run+ticketmate+keys+generate+xxx=")
_MAKE_A_KEY = "run `ticketmate keys generate` and put the line it prints here instead"


def refuse_example_keys(raw: str) -> None:
    """Refuse the placeholder of .env.example, and the public example key as the first key.

    That key may still follow the first one, to read what it encrypted until `ticketmate keys
    rotate` has moved it onto the new key.
    """
    parts = [part.strip() for part in raw.split(",") if part.strip()]
    if ENCRYPTION_KEYS_PLACEHOLDER in parts:
        raise ValueError(f"holds the placeholder of .env.example, not a key; {_MAKE_A_KEY}")
    if parts and parse_key_list(parts[0])[0][1] == _PUBLISHED_EXAMPLE_KEY:
        raise ValueError(
            "the first key is the example key once published in .env.example, which anyone can "
            f"read; {_MAKE_A_KEY} (keep this one after it only until `ticketmate keys rotate` "
            "has run)"
        )


class ConfigError(Exception):
    """A setting has a value the service cannot use; the message names the variable."""


def parse_key_list(raw: str) -> list[tuple[str, bytes]]:
    """Parse `kid:base64key,kid:base64key` into (kid, 32-byte key) pairs, first one first."""
    keys: list[tuple[str, bytes]] = []
    for part in raw.split(","):
        part = part.strip()
        if not part:
            continue
        kid, sep, encoded = part.partition(":")
        kid = kid.strip()
        if not sep or not kid or not encoded.strip():
            raise ValueError("each key must be written as kid:base64key")
        try:
            key = base64.b64decode(encoded.strip(), validate=True)
        except (binascii.Error, ValueError):
            raise ValueError(f"key {kid!r} is not valid base64") from None
        if len(key) != 32:
            raise ValueError(f"key {kid!r} must decode to 32 bytes, not {len(key)}")
        if any(existing == kid for existing, _ in keys):
            raise ValueError(f"key id {kid!r} appears twice")
        keys.append((kid, key))
    return keys


class Settings(BaseSettings):
    """Every setting of the service. Values come from TICKETMATE_* variables or a .env file."""

    model_config = SettingsConfigDict(
        env_prefix="TICKETMATE_", env_file=".env", extra="ignore", frozen=True
    )

    database_url: str = Field(
        default=DEFAULT_DATABASE_URL,
        description=(
            "The database: `sqlite:///relative/path.db` or `sqlite:////absolute/path.db` for an "
            "embedded SQLite file, `postgresql://user:password@host:5432/dbname` for PostgreSQL. "
            "The driver is chosen for you."
        ),
        examples=["postgresql://ticketmate:CHANGE-ME@db.example.com:5432/ticketmate"],
    )
    database_pool_size: int = Field(
        default=10,
        description=(
            "Database connections each process keeps open for taking in Jira events and "
            "delivering cards. The pool is fixed: no connection is opened or closed under load. "
            "A worker uses at most 8 of its own, and one on SQLite."
        ),
        examples=[20],
    )
    encryption_keys: str = Field(
        default="",
        description=(
            "The keys that encrypt secrets stored in the database (Teams webhook URLs, Jira "
            "secrets and ingest tokens): `kid:base64key` pairs, comma-separated, each key 32 "
            "bytes. The first key encrypts; every listed key decrypts. `ticketmate keys "
            "generate` prints a new one. Empty: the key in TICKETMATE_KEY_FILE is used."
        ),
        examples=[ENCRYPTION_KEYS_PLACEHOLDER],
    )
    key_file: Path = Field(
        default=Path("var/encryption.key"),
        description=(
            "Where the encryption key is kept when TICKETMATE_ENCRYPTION_KEYS is empty. The "
            "service creates it on first start (mode 0600) and warns; back it up, since stored "
            "secrets cannot be read without it. In production, set TICKETMATE_ENCRYPTION_KEYS."
        ),
        examples=[Path("/var/lib/ticketmate/encryption.key")],
    )
    worker_poll_seconds: float = Field(
        default=5.0,
        description=(
            "How often, in seconds, the delivery worker looks for due deliveries when nothing "
            "wakes it. A stored event wakes the worker at once (in the same process, or by "
            "LISTEN/NOTIFY on PostgreSQL); polling is the fallback that guarantees pickup."
        ),
        examples=[10],
    )
    delivery_timeout_seconds: float = Field(
        default=8.0,
        description=(
            "The strict total timeout, in seconds, of one request to Teams (deliveries and "
            "Test Connection). A request that takes longer counts as a timeout and is tried "
            "again later."
        ),
        examples=[15],
    )
    delivery_lease_seconds: float | None = Field(
        default=None,
        description=(
            "How long, in seconds, a worker's hold on a channel and its in-flight deliveries "
            "lasts without being renewed: after a worker crashes, how long until those cards are "
            "sent again. Unset: 4 * (TICKETMATE_DELIVERY_TIMEOUT_SECONDS + 1) + 30, which is 66 "
            "with the default timeout."
        ),
        examples=[120],
    )
    allow_loopback_webhooks: bool = Field(
        default=False,
        description=(
            "Accept `http://127.0.0.1:PORT/...` and `http://localhost:PORT/...` as Teams "
            "webhook URLs. For local demos and tests only; leave it off in production."
        ),
        examples=[True],
    )
    base_url: str = Field(
        default="http://127.0.0.1:8000",
        description=(
            "The address people and Jira use to reach this service. It is the host of every "
            "workspace's Jira webhook URL and of printed sign-in links, and an https:// address "
            "turns the Secure cookie flag on. Unset, `ticketmate serve` uses "
            "http://127.0.0.1:<port> with the port it serves on."
        ),
        examples=["https://ticketmate.example.com"],
    )
    retention_days: int = Field(
        default=30,
        description=(
            "Days after which the worker purges delivered, skipped and folded deliveries, their "
            "attempts and their events. Dead letters stay until retried or purged."
        ),
        examples=[90],
    )
    retry_schedule_seconds: Annotated[tuple[float, ...], NoDecode] = Field(
        default=DEFAULT_RETRY_SCHEDULE,
        description=(
            "Delays, in seconds and comma-separated, between attempts to deliver a card that "
            "Teams did not take (timeouts, connection errors, 408, 429, 5xx). Each delay varies "
            "by up to 20 % either way; a longer Retry-After from Teams is honoured (at most 1 "
            "hour). When the attempt after the last delay fails too, the delivery becomes a dead "
            "letter."
        ),
        examples=[(5.0, 30.0, 300.0)],
    )
    channel_rate_per_second: int = Field(
        default=4,
        description=(
            "The most requests sent to one Teams webhook in any rolling second, across all "
            "workers. Teams throttles a channel above 4."
        ),
        examples=[2],
    )
    auto_disable_after_removed: int = Field(
        default=3,
        description=(
            '"Removed from Teams" answers (404 or 410) in a row after which a webhook is '
            "disabled, with the reason shown on it and in the audit log."
        ),
        examples=[5],
    )
    signin_max_failures: int = Field(
        default=5,
        description=(
            "Failed sign-ins for one e-mail address after which it is locked for "
            "TICKETMATE_SIGNIN_LOCKOUT_SECONDS."
        ),
        examples=[10],
    )
    signin_lockout_seconds: int = Field(
        default=900,
        description=(
            "How long, in seconds, an e-mail address stays locked after too many failed sign-ins."
        ),
        examples=[1800],
    )
    log_level: str = Field(
        default="INFO",
        description="The least severe log messages written: DEBUG, INFO, WARNING or ERROR.",
        examples=["WARNING"],
    )
    log_format: str = Field(
        default="text",
        description=(
            "How log lines are written: `text` for people, or `json`: one JSON object per line "
            "(ts, level, logger, msg, and request_id, workspace, delivery_id, event_id where "
            "they apply)."
        ),
        examples=["json"],
    )
    secure_cookies: bool | None = Field(
        default=None,
        description=(
            "Force the Secure flag of the sign-in cookie on (true) or off (false). Unset, it is "
            "on exactly when TICKETMATE_BASE_URL starts with https://."
        ),
        examples=[True],
    )
    metrics_token: SecretStr | None = Field(
        default=None,
        description=(
            "When set, /metrics (on the web app and on `ticketmate worker --metrics-port`) "
            "answers only requests with `Authorization: Bearer <this token>`; unset, it is open."
        ),
        examples=["CHANGE-ME-a-long-random-string"],
    )
    trusted_proxies: str = Field(
        default="",
        description=(
            "Addresses or CIDR ranges of the reverse proxies in front of the web app, "
            "comma-separated. Only requests from these may set X-Forwarded-For and "
            "X-Forwarded-Proto (the client address in the audit log and the sign-in throttle); "
            "from anyone else the headers are ignored. Empty: no proxy is trusted."
        ),
        examples=["10.0.0.5,10.0.1.0/24"],
    )

    @field_validator("worker_poll_seconds", "delivery_timeout_seconds")
    @classmethod
    def _positive(cls, value: float) -> float:
        if value <= 0:
            raise ValueError("must be a positive number")
        return value

    @field_validator(
        "database_pool_size",
        "retention_days",
        "channel_rate_per_second",
        "auto_disable_after_removed",
        "signin_max_failures",
        "signin_lockout_seconds",
    )
    @classmethod
    def _positive_int(cls, value: int) -> int:
        if value <= 0:
            raise ValueError("must be a positive whole number")
        return value

    @field_validator("delivery_lease_seconds")
    @classmethod
    def _positive_lease(cls, value: float | None) -> float | None:
        if value is not None and value <= 0:
            raise ValueError("must be a positive number")
        return value

    @field_validator("trusted_proxies")
    @classmethod
    def _proxies(cls, value: str) -> str:
        for item in (part.strip() for part in value.split(",")):
            if item:
                try:
                    ipaddress.ip_network(item, strict=False)
                except ValueError:
                    raise ValueError(
                        f"{item!r} is not an IP address or CIDR range (e.g. 10.0.0.5, 10.0.1.0/24)"
                    ) from None
        return ",".join(part.strip() for part in value.split(",") if part.strip())

    @field_validator("database_url")
    @classmethod
    def _database_url(cls, value: str) -> str:
        scheme = value.split("://", 1)[0].split("+", 1)[0] if "://" in value else ""
        if scheme not in {"sqlite", "postgresql", "postgres"}:
            raise ValueError("must start with sqlite:/// or postgresql://")
        return value

    @field_validator("encryption_keys")
    @classmethod
    def _keys(cls, value: str) -> str:
        refuse_example_keys(value)
        parse_key_list(value)
        return value

    @field_validator("base_url")
    @classmethod
    def _base_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value.rstrip("/")

    @field_validator("retry_schedule_seconds", mode="before")
    @classmethod
    def _schedule(cls, value: object) -> object:
        if isinstance(value, str):
            try:
                value = tuple(float(p) for p in value.split(",") if p.strip())
            except ValueError:
                raise ValueError("must be a comma-separated list of seconds") from None
        if isinstance(value, tuple | list) and (not value or any(float(v) < 0 for v in value)):
            raise ValueError("must list at least one delay, none negative")
        return value

    @field_validator("log_level")
    @classmethod
    def _level(cls, value: str) -> str:
        if value.upper() not in {"DEBUG", "INFO", "WARNING", "ERROR"}:
            raise ValueError("must be one of DEBUG, INFO, WARNING, ERROR")
        return value.upper()

    @field_validator("log_format")
    @classmethod
    def _log_format(cls, value: str) -> str:
        if value.strip().lower() not in {"text", "json"}:
            raise ValueError("must be text or json")
        return value.strip().lower()

    @cached_property
    def configured_keys(self) -> list[tuple[str, bytes]]:
        return parse_key_list(self.encryption_keys)

    @property
    def use_secure_cookies(self) -> bool:
        if self.secure_cookies is not None:
            return self.secure_cookies
        return self.base_url.startswith("https://")

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")


def load_settings(**overrides: object) -> Settings:
    """Build Settings, turning pydantic's report into one line that names the variable."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        first = exc.errors()[0]
        field = str(first["loc"][0]) if first["loc"] else "settings"
        message = str(first["msg"]).removeprefix("Value error, ")
        if first["type"] in {"float_parsing", "float_type"}:
            message = "must be a positive number"
        elif first["type"] in {"int_parsing", "int_type", "int_from_float"}:
            message = "must be a positive whole number"
        elif first["type"] in {"bool_parsing", "bool_type"}:
            message = "must be true or false"
        raise ConfigError(f"TICKETMATE_{field.upper()}: {message}") from None
