"""Shared fixtures: the loopback fake vendors are registered as a plugin."""

from __future__ import annotations

import contextlib
import importlib
import warnings
from collections.abc import AsyncIterator

import aiohttp
import pytest_asyncio

pytest_plugins = [
    "tests.fakes.fixtures",
    "tests.alertmanager_process",
    "tests.redis_process",
    "tests.ack_rig",
]

# On a failure hypothesis imports libcst to suggest an @example patch; libcst's import warns
# (mypy_extensions.TypedDict) and `filterwarnings = error` turns the failure report into an
# INTERNALERROR that stops the session. Import it once, quietly, so failures report normally.
with warnings.catch_warnings(), contextlib.suppress(ImportError):
    warnings.simplefilter("ignore", DeprecationWarning)
    importlib.import_module("hypothesis.extra._patching")


@pytest_asyncio.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    """One client session per test, closed after it."""
    async with aiohttp.ClientSession() as s:
        yield s
