"""Pinning glibc's mmap threshold (the soak's RSS creep is measured by `python -m bench`)."""

from __future__ import annotations

import platform

import pytest

from receiver.web.memory import ENV, pin_mmap_threshold


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc only")
def test_pinned_on_glibc() -> None:
    assert pin_mmap_threshold({}) is True


def test_the_operators_setting_wins() -> None:
    assert pin_mmap_threshold({ENV: "262144"}) is False
