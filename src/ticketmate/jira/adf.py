"""Atlassian Document Format (ADF) → plain text, for descriptions and comment bodies.

Jira's REST API v3 (and some Cloud webhooks) send rich text as an ADF tree
(`{"type": "doc", "content": [...]}`). Cards show plain text, so the tree is flattened:
paragraphs become lines separated by a blank line, list items get "- " or "1. ", mentions,
emoji, dates and links become their visible text. Anything malformed is skipped, never raised:
the input comes from the network.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

# Deeper trees are not real documents; the cut-off keeps recursion far below Python's limit.
MAX_DEPTH = 40

# Nodes that sit inside a line; every other node type is a block of its own.
INLINE_TYPES = frozenset(
    {"text", "hardBreak", "mention", "emoji", "inlineCard", "status", "date", "placeholder"}
    | {"mediaInline"}
)


def is_adf(value: object) -> bool:
    """True for an ADF document root: a dict with type "doc" and a content list."""
    return (
        isinstance(value, dict)
        and value.get("type") == "doc"
        and isinstance(value.get("content"), list)
    )


def adf_to_text(document: dict[str, Any]) -> str:
    """The visible text of an ADF document, blocks separated by blank lines."""
    return _blocks(document.get("content"), 0, "\n\n").strip()


def _attr(node: dict[str, Any], name: str) -> Any:
    attrs = node.get("attrs")
    return attrs.get(name) if isinstance(attrs, dict) else None


def _str_attr(node: dict[str, Any], *names: str) -> str:
    for name in names:
        value = _attr(node, name)
        if isinstance(value, str) and value:
            return value
    return ""


def _date(node: dict[str, Any]) -> str:
    # ADF dates carry epoch milliseconds as a string; show the calendar day.
    raw = _attr(node, "timestamp")
    try:
        return datetime.fromtimestamp(int(str(raw)) / 1000, UTC).strftime("%Y-%m-%d")
    except (ValueError, OverflowError, OSError):
        return ""


_INLINE_RENDERERS: dict[str, Callable[[dict[str, Any]], str]] = {
    "text": lambda n: n["text"] if isinstance(n.get("text"), str) else "",
    "hardBreak": lambda _n: "\n",
    "mention": lambda n: (
        _str_attr(n, "text") or ("@" + _str_attr(n, "id") if _attr(n, "id") else "")
    ),
    "emoji": lambda n: _str_attr(n, "text", "shortName"),
    "inlineCard": lambda n: _str_attr(n, "url"),
    "status": lambda n: _str_attr(n, "text"),
    "date": _date,
    "placeholder": lambda _n: "",
    "mediaInline": lambda _n: "",
}


def _inline(node: dict[str, Any]) -> str:
    renderer = _INLINE_RENDERERS.get(str(node.get("type")))
    return renderer(node) if renderer else ""


def _children(node: dict[str, Any]) -> list[Any]:
    content = node.get("content")
    return content if isinstance(content, list) else []


def _blocks(nodes: object, depth: int, separator: str) -> str:
    """Render a content list: runs of inline nodes form one line, blocks stand alone."""
    if not isinstance(nodes, list) or depth > MAX_DEPTH:
        return ""
    parts: list[str] = []
    line: list[str] = []
    for node in nodes:
        if not isinstance(node, dict):
            continue
        if node.get("type") in INLINE_TYPES:
            line.append(_inline(node))
            continue
        if line:
            parts.append("".join(line))
            line = []
        rendered = _block(node, depth + 1)
        if rendered:
            parts.append(rendered)
    if line:
        parts.append("".join(line))
    return separator.join(part for part in parts if part)


def _list(node: dict[str, Any], depth: int, ordered: bool) -> str:
    start = _attr(node, "order")
    number = start if isinstance(start, int) and not isinstance(start, bool) else 1
    lines: list[str] = []
    for item in _children(node):
        if not isinstance(item, dict):
            continue
        text = _blocks(_children(item), depth + 1, "\n")
        marker = f"{number}. " if ordered else "- "
        if item.get("type") == "taskItem":
            marker = "[x] " if _attr(item, "state") == "DONE" else "[ ] "
        # Nested lines are indented under their item so the structure stays readable.
        lines.append(marker + text.replace("\n", "\n  "))
        number += 1
    return "\n".join(lines)


def _table(node: dict[str, Any], depth: int) -> str:
    rows: list[str] = []
    for row in _children(node):
        if isinstance(row, dict):
            cells = [
                _blocks(_children(cell), depth + 2, " ").replace("\n", " ")
                for cell in _children(row)
                if isinstance(cell, dict)
            ]
            rows.append(" | ".join(cells))
    return "\n".join(rows)


def _block(node: dict[str, Any], depth: int) -> str:
    kind = node.get("type")
    if kind in ("bulletList", "orderedList", "taskList", "decisionList"):
        return _list(node, depth, ordered=kind == "orderedList")
    if kind == "table":
        return _table(node, depth)
    if kind == "rule":
        return "---"
    if kind == "blockquote":
        quoted = _blocks(_children(node), depth, "\n\n")
        return "\n".join("> " + line for line in quoted.split("\n"))
    if kind in ("blockCard", "embedCard"):
        return _str_attr(node, "url")
    if kind in ("expand", "nestedExpand"):
        title = _str_attr(node, "title")
        body = _blocks(_children(node), depth, "\n\n")
        return f"{title}\n{body}" if title and body else title or body
    # paragraph, heading, codeBlock, panel, layouts and anything new: their content.
    separator = "\n" if kind == "codeBlock" else "\n\n"
    return _blocks(_children(node), depth, separator)
