"""Settings: the one place the service reads its configuration (environment prefix TICKETMATE_)."""

from __future__ import annotations

import base64
import binascii
from functools import cached_property
from pathlib import Path
from typing import Annotated

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

DEFAULT_DATABASE_URL = "sqlite:///var/ticketmate.db"
DEFAULT_RETRY_SCHEDULE = (10.0, 30.0, 120.0, 600.0, 1800.0, 3600.0, 7200.0)


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

    database_url: str = DEFAULT_DATABASE_URL
    # Connections each process keeps open for its hot paths (intake writer, delivery worker).
    database_pool_size: int = 10
    encryption_keys: str = ""
    key_file: Path = Path("var/encryption.key")
    worker_poll_seconds: float = 5.0
    delivery_timeout_seconds: float = 8.0
    # How long a worker's hold on a channel and its in-flight deliveries lasts without being
    # renewed (after a crash: how long until they are sent again). Unset: computed from the
    # delivery timeout.
    delivery_lease_seconds: float | None = None
    allow_loopback_webhooks: bool = False
    base_url: str = "http://127.0.0.1:8000"
    retention_days: int = 30
    retry_schedule_seconds: Annotated[tuple[float, ...], NoDecode] = DEFAULT_RETRY_SCHEDULE
    channel_rate_per_second: int = 4
    auto_disable_after_removed: int = 3
    signin_max_failures: int = 5
    signin_lockout_seconds: int = 900
    log_level: str = "INFO"
    secure_cookies: bool | None = Field(
        default=None, description="Force the Secure cookie flag; by default it follows base_url."
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
