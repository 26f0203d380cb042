"""Hot reload in process: whatever is raised while loading is a logged rejection, never a dead
watcher (tests/test_lifecycle.py drives a real `serve` process through broken files)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from pathlib import Path

import pytest

from receiver.config.load import load_config
from receiver.web import reload as reload_module
from receiver.web.logs import Redactor
from receiver.web.reload import Reloader
from receiver.web.service import Service
from tests.helpers import ROUTING, dry_run_router

GAUGE = "oncall_router_config_last_reload_successful"


def reloader(tmp_path: Path) -> tuple[Reloader, Service, Path]:
    path = tmp_path / "routing.yaml"
    path.write_text(ROUTING.read_text())
    service, _ = dry_run_router()
    return Reloader(path, service, {}, Redactor(), secrets_required=False), service, path


def gauge(service: Service) -> float | None:
    return service.metrics.registry.get_sample_value(GAUGE)


def explode(*args: object, **kwargs: object) -> None:
    raise RuntimeError("a bug while loading")


def test_anything_raised_while_loading_is_a_rejection(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Not only ConfigError: any exception keeps the old config, logs it, and sets the gauge 0."""
    r, service, path = reloader(tmp_path)
    assert r.reload("SIGHUP")
    assert gauge(service) == 1
    running = service.config
    monkeypatch.setattr(reload_module, "load_config", explode)
    with caplog.at_level(logging.ERROR, "receiver.reload"):
        assert not r.reload("SIGHUP")
    assert gauge(service) == 0
    assert service.config is running
    problems = [getattr(rec, "problem", "") for rec in caplog.records]
    assert f"{path}:1: (file): cannot load: RuntimeError: a bug while loading" in problems
    assert "reload failed; keeping the running configuration" in caplog.messages


def test_a_failing_swap_keeps_the_running_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Should switching to a valid file fail half-way, the running config is put back."""
    r, service, _ = reloader(tmp_path)
    running = service.config

    def half_swap(config: object) -> None:
        service.config = config  # type: ignore[assignment]
        raise RuntimeError("senders could not be built")

    monkeypatch.setattr(service, "swap", half_swap)
    with caplog.at_level(logging.ERROR, "receiver.reload"):
        assert not r.reload("SIGHUP")
    assert service.config is running
    assert gauge(service) == 0
    assert any("cannot switch to it" in getattr(rec, "problem", "") for rec in caplog.records)


async def test_the_watcher_survives_and_picks_up_the_next_edit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A reload that raises, then a fingerprint that raises: the watcher logs and keeps going."""
    r, service, path = reloader(tmp_path)
    monkeypatch.setattr(reload_module, "load_config", explode)
    watcher = asyncio.create_task(r.watch(0.01))
    try:
        path.write_text(ROUTING.read_text() + "\n# an edit\n")
        await _until(lambda: gauge(service) == 0)

        real_fingerprint = reload_module.fingerprint
        monkeypatch.setattr(reload_module, "fingerprint", explode)
        await _until(lambda: "routing file watcher failed; still watching" in caplog.messages)
        monkeypatch.setattr(reload_module, "fingerprint", real_fingerprint)

        monkeypatch.setattr(reload_module, "load_config", load_config)
        path.write_text(ROUTING.read_text() + "\n# a good edit\n")
        await _until(lambda: gauge(service) == 1)
        assert not watcher.done()
    finally:
        watcher.cancel()
        with pytest.raises(asyncio.CancelledError):
            await watcher


async def _until(condition: Callable[[], bool]) -> None:
    for _ in range(500):
        if condition():
            return
        await asyncio.sleep(0.01)
    pytest.fail("condition never held")
