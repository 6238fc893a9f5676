"""Helpers that act in the web UI as a browser would (forms, cookies, CSRF fields)."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient

CSRF_FIELD = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_from(html: str) -> str:
    found = CSRF_FIELD.search(html)
    assert found, "the page has no CSRF field"
    return found.group(1)


def sign_in(client: TestClient, email: str, password: str) -> str:
    """Sign in through the form; returns the page's CSRF token of the new session."""
    form = client.get("/login")
    response = client.post(
        "/login",
        data={"email": email, "password": password, "csrf_token": csrf_from(form.text)},
        follow_redirects=True,
    )
    assert response.status_code == 200, response.text
    return csrf_from(response.text)
