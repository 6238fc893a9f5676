"""The ingest baseline: a bare FastAPI endpoint on the best stack uvicorn offers.

    python -m bench.bare --port 9001

Reads the body, parses it with orjson and answers 202, served by uvicorn with uvloop and
httptools: what any Python web service on this machine could reach, before doing any work.
"""

from __future__ import annotations

import argparse

import orjson
import uvicorn
from fastapi import FastAPI, Request, Response

app = FastAPI()


@app.post("/api/webhooks/jira")
async def receive(request: Request) -> Response:
    orjson.loads(await request.body())
    return Response(status_code=202)


@app.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=args.port,
        loop="uvloop",
        http="httptools",
        log_level="warning",
        access_log=False,
    )


if __name__ == "__main__":
    main()
