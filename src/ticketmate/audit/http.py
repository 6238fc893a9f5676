"""Audit details taken from an HTTP request: who acted, from where."""

from __future__ import annotations

from fastapi import Request

from ticketmate.audit.service import Actor, RequestInfo
from ticketmate.security.auth import Principal


def request_info(request: Request) -> RequestInfo:
    return RequestInfo(
        ip=request.client.host if request.client else None,
        user_agent=request.headers.get("user-agent"),
    )


def actor_of(principal: Principal) -> Actor:
    return Actor("user", principal.user_id, principal.email)
