"""Everything the pages need is served by the service itself: no CDN, works offline."""

from __future__ import annotations

import re
from pathlib import Path

from fastapi.testclient import TestClient

from tests.support.teams import make_webhook
from tests.web.conftest import Browser, People
from ticketmate.state import Services

STATIC = Path(__file__).resolve().parents[2] / "src" / "ticketmate" / "web" / "static"
VENDORED = {
    "htmx/htmx.min.js": "htmx",
    "pico/pico.min.css": "Pico CSS",
    "adaptivecards/adaptivecards.min.js": "AdaptiveCards",
}


def test_vendored_files_are_served_with_their_licences(client: TestClient) -> None:
    readme = (STATIC / "vendor" / "README.md").read_text()
    for path, marker in VENDORED.items():
        served = client.get(f"/static/vendor/{path}")
        assert served.status_code == 200, path
        assert marker in served.text[:4000] or marker in readme, path
        folder = (STATIC / "vendor" / path).parent
        assert any(p.name.startswith("LICENSE") for p in folder.iterdir()), folder
        assert path.split("/")[-1] in readme
    assert client.get("/static/app.js").status_code == 200
    assert client.get("/static/app.css").status_code == 200


def test_pages_load_nothing_from_other_sites(admin: Browser, svc: Services, people: People) -> None:
    make_webhook(svc, people.acme.id, "#eng", "http://127.0.0.1:9/workflows/x")
    for path in (
        "/login",
        "/w/acme/admin/integrations",
        "/w/acme/admin/integrations/teams/webhooks/new",
        "/w/acme/admin/integrations/teams/deliveries",
        "/w/acme/security/audit-log",
    ):
        page = admin.client.get(path).text
        sources = re.findall(r'<(?:script|link)[^>]+(?:src|href)="([^"]+)"', page)
        assert sources, path
        assert all(s.startswith("/static/") for s in sources), (path, sources)
