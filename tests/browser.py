"""A real headless Chromium (Debian `chromium`, driven through Debian's `chromedriver` by
Selenium) for what a person looks at in a browser.

Selenium is synchronous; the router under test runs on the test's own event loop, so every
browser step runs in a thread (`await browser.open(...)`) and the loop goes on serving.
Chromium is started with the flags this closed network needs (nothing fetched at start, no
proxy) and a fresh profile; it is Debian's build, never one downloaded by a driver manager.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from selenium import webdriver
from selenium.webdriver.chrome.service import Service as DriverService
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.ui import WebDriverWait

from tests.helpers import require_tool

FLAGS = (
    "--headless",
    "--no-sandbox",  # as root, and in containers without user namespaces
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-proxy-server",  # everything is on loopback
)
WAIT = 10.0  # seconds for a page to load after a click


@dataclass(frozen=True)
class Viewport:
    """What fits on the screen: the window and the page's widths, the button's box."""

    width: int
    height: int
    page_width: int  # document scroll width: more than `width` means a horizontal scroll
    button: dict[str, float] | None  # the first button's bounding box, None without one


class Browser:
    def __init__(self, driver: webdriver.Chrome) -> None:
        self.driver = driver

    async def open(self, url: str) -> None:
        await asyncio.to_thread(self.driver.get, url)

    async def heading(self) -> str:
        return await asyncio.to_thread(lambda: self.driver.find_element(By.TAG_NAME, "h1").text)

    async def text(self) -> str:
        """The page's visible text."""
        return await asyncio.to_thread(lambda: self.driver.find_element(By.TAG_NAME, "body").text)

    async def buttons(self) -> list[str]:
        def labels() -> list[str]:
            return [b.text for b in self.driver.find_elements(By.TAG_NAME, "button")]

        return await asyncio.to_thread(labels)

    async def click(self, label: str) -> None:
        """Click the button labelled `label` and wait for the page it leads to."""

        def click() -> None:
            old = self.driver.find_element(By.TAG_NAME, "html")
            button = next(
                b for b in self.driver.find_elements(By.TAG_NAME, "button") if b.text == label
            )
            button.click()
            WebDriverWait(self.driver, WAIT).until(expected_conditions.staleness_of(old))

        await asyncio.to_thread(click)

    async def phone(self, width: int = 375, height: int = 667) -> None:
        """A phone's screen (an iPhone SE's by default), touch and device pixel ratio 2."""
        metrics = {"width": width, "height": height, "deviceScaleFactor": 2, "mobile": True}
        await asyncio.to_thread(
            self.driver.execute_cdp_cmd, "Emulation.setDeviceMetricsOverride", metrics
        )

    async def desktop(self) -> None:
        await asyncio.to_thread(
            self.driver.execute_cdp_cmd, "Emulation.clearDeviceMetricsOverride", {}
        )

    async def viewport(self) -> Viewport:
        script = """
            const button = document.querySelector('button');
            const box = button ? button.getBoundingClientRect() : null;
            return [window.innerWidth, window.innerHeight,
                    document.documentElement.scrollWidth,
                    box && {left: box.left, right: box.right, top: box.top,
                            bottom: box.bottom, width: box.width, height: box.height}];
        """
        found: list[Any] = await asyncio.to_thread(self.driver.execute_script, script)
        width, height, page_width, button = found
        return Viewport(int(width), int(height), int(page_width), button)


@contextlib.contextmanager
def chromium(profile: Path) -> Iterator[Browser]:
    """Headless Chromium with a fresh profile in `profile`; skipped locally without the Debian
    packages, a failure in CI (which installs them)."""
    binary = require_tool("chromium", "chromium")
    driver_path = require_tool("chromedriver", "chromium-driver")
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for flag in (*FLAGS, f"--user-data-dir={profile}"):
        options.add_argument(flag)
    # An explicit driver and binary: Selenium Manager would otherwise try to download them.
    driver = webdriver.Chrome(service=DriverService(driver_path), options=options)
    try:
        yield Browser(driver)
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)
