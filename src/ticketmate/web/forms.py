"""Reading HTML form values and putting service errors next to the fields they are about."""

from __future__ import annotations

from dataclasses import dataclass, field

from pydantic import ValidationError

from ticketmate.errors import ApiError, validation_details

CHECKED = frozenset({"on", "true", "1", "yes"})


def checkbox(value: str | None) -> bool:
    """An HTML checkbox sends its value only when ticked; absent means off."""
    return (value or "").strip().lower() in CHECKED


def split_values(text: str | None) -> list[str]:
    """`DEMO, OPS` → ["DEMO", "OPS"]: the multi-value inputs' form without JavaScript."""
    return [part.strip() for part in (text or "").replace("\n", ",").split(",") if part.strip()]


def join_values(values: list[str] | None) -> str:
    return ", ".join(values or [])


@dataclass
class FormErrors:
    """Messages by form field name, plus any that belong to no field."""

    fields: dict[str, str] = field(default_factory=dict)
    general: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.fields or self.general)

    def add(self, name: str, message: str, renames: dict[str, str]) -> None:
        shown = renames.get(name, name)
        if shown in self.fields:
            return
        self.fields[shown] = message

    @classmethod
    def of_validation(cls, exc: ValidationError, renames: dict[str, str]) -> FormErrors:
        errors = cls()
        for detail in validation_details(list(exc.errors())):
            errors.add(str(detail["field"]), _sentence(str(detail["message"])), renames)
        return errors

    @classmethod
    def of_api_error(cls, exc: ApiError, renames: dict[str, str]) -> FormErrors:
        errors = cls()
        named = [d for d in exc.details or [] if "field" in d]
        for detail in named:
            errors.add(str(detail["field"]), _sentence(str(detail.get("message", ""))), renames)
        # The service's own sentence says the most (it names the duplicate's channel, the
        # accepted URL forms…): shown by the field when it concerns one, else on the form.
        if len(named) == 1:
            only = renames.get(str(named[0]["field"]), str(named[0]["field"]))
            errors.fields[only] = exc.message
        elif not named:
            errors.general.append(exc.message)
        return errors


def _sentence(message: str) -> str:
    message = message.strip()
    if not message:
        return "This value is not valid."
    message = message[0].upper() + message[1:]
    return message if message.endswith((".", "!", "?")) else f"{message}."
