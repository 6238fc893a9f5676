"""The settings reference (docs/configuration.md) and .env.example, rendered from the Settings
class, so that what an operator reads is what the code accepts, and a new setting cannot go
undocumented."""

from __future__ import annotations

import json
import re
import textwrap
import types
from dataclasses import dataclass
from enum import Enum
from pathlib import Path, PurePath
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import SecretBytes, SecretStr
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined
from pydantic_settings import BaseSettings, NoDecode

from ticketmate.config import Settings

DOCS_FILE = Path("docs/configuration.md")
ENV_EXAMPLE_FILE = Path(".env.example")
CONFIG_SOURCE = "src/ticketmate/config.py"
REGENERATE = "make config-docs"
WIDTH = 100


class UndocumentedSettings(Exception):
    """A setting the reference cannot describe; the message names each one and what it lacks."""


@dataclass(frozen=True)
class SettingDoc:
    """One setting as an operator sees it: the variable and values as written in the
    environment. `default` is None when the variable is unset by default."""

    field: str
    variable: str
    kind: str
    default: str | None
    required: bool
    meaning: str
    example: str


def documentation_gaps(settings_class: type[BaseSettings] = Settings) -> list[str]:
    """One sentence per setting that lacks what the reference needs: a description, and an
    example wherever the default cannot serve as one."""
    gaps: list[str] = []
    for name, field in settings_class.model_fields.items():
        variable = variable_name(settings_class, name, field)
        if not (field.description or "").strip():
            gaps.append(
                f"{variable} ({name}) has no description: "
                f"give it Field(description=...) in {CONFIG_SOURCE}"
            )
        if not field.examples and _default(field) is None:
            gaps.append(
                f"{variable} ({name}) has no example: "
                f"give it Field(examples=[...]) in {CONFIG_SOURCE}"
            )
    return gaps


def describe(settings_class: type[BaseSettings] = Settings) -> list[SettingDoc]:
    """Every setting, in the order the class declares them."""
    gaps = documentation_gaps(settings_class)
    if gaps:
        raise UndocumentedSettings("; ".join(gaps))
    docs: list[SettingDoc] = []
    for name, field in settings_class.model_fields.items():
        as_json = _decoded_as_json(settings_class, field)
        default = _default(field)
        example = field.examples[0] if field.examples else default
        docs.append(
            SettingDoc(
                field=name,
                variable=variable_name(settings_class, name, field),
                kind=_kind(field.annotation, as_json=as_json),
                default=None if default is None else env_text(default, as_json=as_json),
                required=field.is_required(),
                meaning=" ".join((field.description or "").split()),
                example=env_text(example, as_json=as_json),
            )
        )
    return docs


def variable_name(settings_class: type[BaseSettings], name: str, field: FieldInfo) -> str:
    if isinstance(field.validation_alias, str):
        return field.validation_alias.upper()
    return f"{settings_class.model_config.get('env_prefix', '')}{name}".upper()


def env_text(value: object, *, as_json: bool = False) -> str:
    """A value written as it would be in the environment or a .env file."""
    if isinstance(value, SecretStr | SecretBytes):
        return env_text(value.get_secret_value(), as_json=as_json)
    if isinstance(value, Enum):
        return env_text(value.value, as_json=as_json)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    if isinstance(value, PurePath):
        return value.as_posix()
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, str):
        return value
    if isinstance(value, dict) or (as_json and isinstance(value, list | tuple | set | frozenset)):
        return json.dumps(_plain(value))
    if isinstance(value, list | tuple | set | frozenset):
        return ",".join(env_text(item) for item in value)
    return str(value)


def _plain(value: object) -> object:
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_plain(v) for v in value]
    if isinstance(value, bool | int | float) or value is None:
        return value
    return env_text(value)


def _default(field: FieldInfo) -> Any:
    if field.is_required():
        return None
    default = field.get_default(call_default_factory=True, validated_data={})
    return None if default is PydanticUndefined else default


def _decoded_as_json(settings_class: type[BaseSettings], field: FieldInfo) -> bool:
    # pydantic-settings reads lists and mappings from the environment as JSON, unless the field
    # (or the whole class) turns decoding off and parses the text itself.
    if any(m is NoDecode or isinstance(m, NoDecode) for m in field.metadata):
        return False
    if settings_class.model_config.get("enable_decoding") is False:
        return False
    return _is_collection(field.annotation)


def _is_collection(annotation: Any) -> bool:
    origin = get_origin(annotation)
    if origin is Annotated:
        return _is_collection(get_args(annotation)[0])
    if origin in (Union, types.UnionType):
        return any(_is_collection(a) for a in get_args(annotation) if a is not type(None))
    return origin in (list, tuple, set, frozenset, dict) or annotation in (
        list,
        tuple,
        set,
        frozenset,
        dict,
    )


_KINDS: dict[Any, str] = {
    bool: "true or false",
    int: "whole number",
    float: "number",
    str: "text",
    bytes: "text",
    SecretStr: "secret text",
    SecretBytes: "secret text",
}


def _kind(annotation: Any, *, as_json: bool) -> str:
    """The type in an operator's words."""
    origin = get_origin(annotation)
    args = get_args(annotation)
    if origin is Annotated:
        return _kind(args[0], as_json=as_json)
    if origin in (Union, types.UnionType):
        present = [a for a in args if a is not type(None)]
        label = " or ".join(_kind(a, as_json=as_json) for a in present)
        return f"{label}, or unset" if len(present) < len(args) else label
    if origin is Literal:
        return "one of " + ", ".join(env_text(a) for a in args)
    if origin in (list, tuple, set, frozenset) or annotation in (list, tuple, set, frozenset):
        items = [a for a in args if a is not Ellipsis]
        of = f" of {_plural(_kind(items[0], as_json=False))}" if len(set(items)) == 1 else ""
        return f"JSON list{of}" if as_json else f"comma-separated list{of}"
    if origin is dict or annotation is dict:
        return "JSON object"
    if isinstance(annotation, type):
        if issubclass(annotation, Enum):
            return "one of " + ", ".join(env_text(m.value) for m in annotation)
        if issubclass(annotation, PurePath):
            return "file path"
        for known, label in _KINDS.items():
            if issubclass(annotation, known):
                return label
        return annotation.__name__
    return str(annotation)


def _plural(kind: str) -> str:
    return {"whole number": "whole numbers", "number": "numbers", "file path": "file paths"}.get(
        kind, kind
    )


def _sources(settings_class: type[BaseSettings]) -> tuple[str, list[str]]:
    config = settings_class.model_config
    prefix = str(config.get("env_prefix", ""))
    env_file = config.get("env_file")
    if env_file is None:
        files: list[str] = []
    elif isinstance(env_file, str | PurePath):
        files = [Path(env_file).as_posix()]
    else:
        files = [Path(f).as_posix() for f in env_file]
    return prefix, files


def _intro(settings_class: type[BaseSettings]) -> str:
    prefix, files = _sources(settings_class)
    text = "The service reads each setting when it starts, from an environment variable named "
    text += f"`{prefix}` and the setting's name" if prefix else "after the setting"
    if files:
        listed = " or ".join(f"`{f}`" for f in files)
        text += (
            f", or from a line `{prefix}NAME=value` in a {listed} file in the working directory; "
            f"an environment variable wins over the same line in {listed}"
        )
    text += "."
    if settings_class.model_config.get("extra") == "ignore":
        text += f" Other `{prefix}*` variables are ignored, so a misspelt name changes nothing."
    return text + (
        " A value the service cannot use stops it with one line that names the variable and "
        "says what is wrong."
    )


def _how_to_write(settings_class: type[BaseSettings]) -> str:
    _, files = _sources(settings_class)
    copy = f"copy it to `{files[0]}`" if files else "set the variables"
    return (
        f"[`{ENV_EXAMPLE_FILE}`](../{ENV_EXAMPLE_FILE}) lists the same settings, each commented "
        f"out with an example value: {copy} and uncomment what you want to change. Values are "
        "written as in the environment: `true` or `false`, plain numbers (durations in seconds), "
        "lists comma-separated. *Unset* means the variable is not set at all."
    )


def render_markdown(settings_class: type[BaseSettings] = Settings) -> str:
    """docs/configuration.md: an introduction, an overview table, then one section a setting."""
    settings = describe(settings_class)
    lines = [
        "# Configuration",
        "",
        f"<!-- Generated from the Settings class in {CONFIG_SOURCE} by `{REGENERATE}`; "
        "edit the class, not this file. -->",
        "",
        *_markdown_paragraph(_intro(settings_class)),
        "",
        *_markdown_paragraph(_how_to_write(settings_class)),
        "",
        "| Variable | Type | Default |",
        "| --- | --- | --- |",
    ]
    for doc in settings:
        anchor = re.sub(r"[^a-z0-9_-]", "", doc.variable.lower())
        lines.append(
            f"| [`{doc.variable}`](#{anchor}) | {_cell(doc.kind)} | {_cell(_md_default(doc))} |"
        )
    lines += ["", "## Settings"]
    for doc in settings:
        lines += [
            "",
            f"### `{doc.variable}`",
            "",
            *_markdown_paragraph(doc.meaning),
            "",
            f"- Type: {doc.kind}",
            f"- Default: {_md_default(doc)}",
            f"- Example: {_code(f'{doc.variable}={_dotenv_value(doc.example)}')}",
        ]
    return "\n".join(lines) + "\n"


def render_env_example(settings_class: type[BaseSettings] = Settings) -> str:
    """.env.example: every setting commented out, so that a copy of the file changes nothing
    until a line is uncommented."""
    settings = describe(settings_class)
    _, files = _sources(settings_class)
    target = f"to {files[0]} in the working directory" if files else "into the environment"
    header = (
        f"Ticket MATE settings, generated from the Settings class in {CONFIG_SOURCE} by "
        f"`{REGENERATE}`; edit the class, not this file. The full reference: {DOCS_FILE}. "
        f"Copy this file {target}, or set the variables in the environment (they win over the "
        "file). Every setting is commented out with an example value, so the copy changes "
        "nothing until you uncomment a line."
    )
    lines = _wrap(header, prefix="# ")
    for doc in settings:
        lines += [
            "",
            *_wrap(f"{doc.meaning} (default: {_env_default(doc)})", prefix="# "),
            f"# {doc.variable}={_dotenv_value(doc.example)}",
        ]
    return "\n".join(lines) + "\n"


_GLUE = "\x00"


def _wrap(text: str, *, prefix: str = "") -> list[str]:
    # A code span or the closing "(default: ...)" stays on one line, so that it reads as one
    # value and a copied command is whole.
    glued = re.sub(
        r"`[^`]*`|\(default: [^)]*\)$", lambda m: m.group().replace(" ", _GLUE), text.strip()
    )
    lines = textwrap.wrap(
        glued,
        WIDTH,
        initial_indent=prefix,
        subsequent_indent=prefix,
        break_long_words=False,
        break_on_hyphens=False,
    )
    return [line.replace(_GLUE, " ") for line in lines]


def _markdown_paragraph(text: str) -> list[str]:
    # A wrapped line that happens to start like a list item, heading or quote would turn into
    # one; escaped, it stays part of the paragraph.
    return [
        re.sub(r"^(\d+)([.)])", r"\1\\\2", re.sub(r"^([-+*#>])", r"\\\1", line))
        for line in _wrap(text)
    ]


def _md_default(doc: SettingDoc) -> str:
    if doc.required:
        return "required"
    if doc.default is None:
        return "unset"
    if doc.default == "":
        return "empty"
    return _code(doc.default)


def _env_default(doc: SettingDoc) -> str:
    if doc.required:
        return "required"
    if doc.default is None:
        return "unset"
    return doc.default or "empty"


def _code(text: str) -> str:
    fence = "``" if "`" in text else "`"
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def _dotenv_value(value: str) -> str:
    # Unquoted, a .env value ends at " #" and loses surrounding spaces; single quotes keep it
    # exactly as written.
    if value and not re.search(r"[\s#'\"\\]", value):
        return value
    if "'" not in value:
        return f"'{value}'"
    return json.dumps(value)


def source_checkout() -> Path:
    """The root of the source tree this package runs from, where the checked-in files live."""
    root = Path(__file__).resolve().parents[2]
    if (root / "pyproject.toml").is_file() and (root / CONFIG_SOURCE).is_file():
        return root
    raise FileNotFoundError(
        "this Ticket MATE is not run from a source checkout; give --output PATH instead"
    )


def checked_in(path: Path | None, default: Path) -> Path:
    return path if path is not None else source_checkout() / default
