"""`serve --loop`: asyncio by default, uvloop when installed, one clear error when it is not."""

from __future__ import annotations

import asyncio
import sys

import pytest

from receiver.cli import event_loop
from receiver.cli.main import main
from receiver.cli.tools import UsageError


async def _loop_class() -> str:
    return type(asyncio.get_running_loop()).__module__


def test_asyncio_is_the_default_loop() -> None:
    assert event_loop.loop_factory("asyncio") is None
    assert event_loop.run(_loop_class(), None).startswith("asyncio")


def test_uvloop_runs_the_service_loop() -> None:
    pytest.importorskip("uvloop")
    factory = event_loop.loop_factory("uvloop")
    assert factory is not None
    assert event_loop.run(_loop_class(), factory).startswith("uvloop")


def test_missing_uvloop_is_a_usage_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "uvloop", None)  # `import uvloop` now raises ImportError
    with pytest.raises(UsageError, match=r"uvloop is not installed \(pip install"):
        event_loop.loop_factory("uvloop")


def test_serve_without_uvloop_exits_2_before_reading_anything(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "uvloop", None)
    # A routing file that does not exist: the loop is checked first, so it is never read.
    code = main(["serve", "--config", "/nonexistent/routing.yaml", "--loop", "uvloop"])
    assert code == 2
    err = capsys.readouterr().err
    assert err == (
        "error: --loop uvloop: uvloop is not installed (pip install 'oncall-router[fast]')\n"
    )
