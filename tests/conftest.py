"""Shared fixtures: the loopback fake vendors are registered as a plugin."""

from __future__ import annotations

pytest_plugins = ["tests.fakes.fixtures"]
