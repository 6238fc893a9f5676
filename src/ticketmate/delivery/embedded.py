"""The worker inside `ticketmate serve`: started and stopped with the web app."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from ticketmate.delivery.worker import TeamsDeliveryWorker
from ticketmate.state import Services

log = logging.getLogger(__name__)
WAKE_HOOK = "wake_worker"


async def start_embedded_worker(svc: Services) -> Callable[[], Awaitable[None]]:
    worker = TeamsDeliveryWorker(svc)
    task = asyncio.create_task(worker.run(), name="teams-delivery-worker")
    # The intake calls this after committing deliveries: the card goes out at once.
    svc.extras[WAKE_HOOK] = worker.wake
    log.info("delivery worker %s started", worker.worker_id)

    async def stop() -> None:
        svc.extras.pop(WAKE_HOOK, None)
        worker.stop()
        try:
            await asyncio.wait_for(task, timeout=svc.settings.delivery_timeout_seconds + 5)
        except TimeoutError:
            task.cancel()
        log.info("delivery worker stopped")

    return stop


def wake_worker(svc: Services) -> None:
    """Tell an in-process worker that deliveries were committed (no-op without one)."""
    hook = svc.extras.get(WAKE_HOOK)
    if callable(hook):
        hook()
