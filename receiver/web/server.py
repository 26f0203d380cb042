"""Run the app until SIGTERM: reload on SIGHUP, then shut down gracefully.

On SIGTERM (or SIGINT) `/-/ready` answers 503 at once while the service keeps serving for
`shutdown_delay` seconds, so Kubernetes takes the pod out of its Service before it stops
listening; then in-flight requests finish (up to the delivery deadline), background deliveries
are drained, and the process exits 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal

from aiohttp import web

from receiver.web.memory import pin_mmap_threshold
from receiver.web.reload import Reloader
from receiver.web.service import Service

log = logging.getLogger("receiver.server")


async def serve(
    app: web.Application,
    service: Service,
    host: str,
    port: int,
    *,
    reloader: Reloader | None,
    reload_interval: float,
    shutdown_delay: float,
) -> None:
    grace = service.config.delivery.deadline + 1
    runner = web.AppRunner(app, handle_signals=False, access_log=None, shutdown_timeout=grace)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    watcher = None
    if reloader is not None:
        loop.add_signal_handler(signal.SIGHUP, reloader.reload, "SIGHUP")
        if reload_interval > 0:
            watcher = asyncio.create_task(reloader.watch(reload_interval))
    # Everything allocated at start-up lives for the process: keep it out of the collector's
    # full passes, which otherwise pause the loop for tens of milliseconds under load.
    gc.freeze()
    pinned = pin_mmap_threshold()
    log.info(
        "listening",
        extra={
            "address": f"{host}:{port}",
            "dry_run": service.dry_run,
            "mmap_threshold_pinned": pinned,
        },
    )
    try:
        await stop.wait()
        service.ready = False
        log.info("shutting down", extra={"delay": shutdown_delay, "grace": grace})
        await asyncio.sleep(shutdown_delay)
    finally:
        if watcher is not None:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
        # Stops listening, lets in-flight requests finish, drains background deliveries.
        await runner.cleanup()
    log.info("stopped")
