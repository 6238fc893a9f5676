"""Everything the pages need is served by the service itself: no CDN, works offline."""

from __future__ import annotations

import hashlib
import re
from importlib.resources import files
from importlib.resources.abc import Traversable

from fastapi.testclient import TestClient

from tests.support.teams import make_webhook
from tests.web.conftest import Browser, People
from ticketmate.state import Services

# Each vendored file as published in its npm release (vendor/README.md names the package and
# version): its size in bytes and SHA-256. Served bytes must be exactly these — a truncated,
# empty or different file fails.
VENDORED = {
    "htmx/htmx.min.js": (
        "htmx.org",
        "2.0.11",
        52_182,
        "d6fdc75f204e6bdefa99b69bf1e6d4ac69b8a364f77929f45c13476b4000f717",
    ),
    "pico/pico.min.css": (
        "@picocss/pico",
        "2.1.1",
        83_319,
        "fbc9a63fc9fc9f72d12fd7fc9806e11fa9f77ae4f9cad146b27003a1119ba3db",
    ),
    "adaptivecards/adaptivecards.min.js": (
        "adaptivecards",
        "3.0.6",
        334_964,
        "5e7c13f3300ae7b89b34703501e08d709fbb6635f1c6755b92495577a77344f2",
    ),
    "swagger-ui/swagger-ui-bundle.js": (
        "swagger-ui-dist",
        "5.35.0",
        1_732_839,
        "e6a898692f2d768e807c3ba4626068a69a2c5dd960dd6c76f3e4d3a3de180af2",
    ),
    "swagger-ui/swagger-ui.css": (
        "swagger-ui-dist",
        "5.35.0",
        187_956,
        "5ed08757e53da3e026d6cbecc61fe5d43585c9560b302d534ad56692519a273d",
    ),
}


def packaged(path: str) -> Traversable:
    """A static file as the installed package holds it."""
    return files("ticketmate") / "web" / "static" / path


def test_vendored_files_are_served_whole_with_their_licences(client: TestClient) -> None:
    readme = packaged("vendor/README.md").read_text()
    for path, (package, version, size, sha256) in VENDORED.items():
        served = client.get(f"/static/vendor/{path}")
        assert served.status_code == 200, path
        assert len(served.content) == size, path
        assert hashlib.sha256(served.content).hexdigest() == sha256, path
        assert served.content == packaged(f"vendor/{path}").read_bytes(), path
        folder = packaged(f"vendor/{path.rsplit('/', 1)[0]}")
        assert any(p.name.startswith("LICENSE") for p in folder.iterdir()), path
        [row] = [line for line in readme.splitlines() if f"`{path}`" in line]
        assert f"`{package}`" in row, row
        assert f"| {version} |" in row, row
    for path in ("app.js", "app.css"):
        served = client.get(f"/static/{path}")
        assert served.status_code == 200, path
        assert served.content == packaged(path).read_bytes(), path


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
