"""/docs: the API described by Swagger UI, served from the vendored files (no CDN).

FastAPI's own /docs loads Swagger UI from a CDN and starts it with an inline script; the
service runs without internet access and its Content-Security-Policy allows neither.
"""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

OPENAPI_URL = "/openapi.json"
VENDOR = "/static/vendor/swagger-ui"

PAGE = f"""<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>Ticket MATE API</title>
  <link rel="stylesheet" href="{VENDOR}/swagger-ui.css">
  <script src="{VENDOR}/swagger-ui-bundle.js" defer></script>
  <script src="/static/api-docs.js" defer></script>
</head>
<body>
  <div id="swagger-ui" data-openapi-url="{OPENAPI_URL}"></div>
</body>
</html>
"""

router = APIRouter(include_in_schema=False)


@router.get("/docs")
def api_docs() -> HTMLResponse:
    return HTMLResponse(PAGE)
