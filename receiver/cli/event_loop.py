"""The event loop `serve` runs on: asyncio's own (the default) or uvloop, an optional extra."""

from __future__ import annotations

import asyncio
import importlib
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from receiver.cli.tools import UsageError

T = TypeVar("T")
LOOPS = ("asyncio", "uvloop")
DEFAULT = "asyncio"

LoopFactory = Callable[[], asyncio.AbstractEventLoop]


def loop_factory(name: str) -> LoopFactory | None:
    """The factory for `--loop NAME`; None is asyncio's default loop.

    Resolved before the service starts, so a missing uvloop is one clear error (exit 2), not a
    traceback after the routing file has been read.
    """
    if name == "asyncio":
        return None
    if name != "uvloop":
        raise UsageError(f"--loop {name!r}: expected one of {', '.join(LOOPS)}")
    try:
        # Imported by name: uvloop is optional, and this module must load without it.
        uvloop = importlib.import_module("uvloop")
    except ImportError:
        raise UsageError(
            "--loop uvloop: uvloop is not installed (pip install 'oncall-router[fast]')"
        ) from None
    factory: LoopFactory = uvloop.new_event_loop
    return factory


def run(main: Coroutine[Any, Any, T], factory: LoopFactory | None) -> T:
    """`asyncio.run(main)` on the chosen loop."""
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(main)
