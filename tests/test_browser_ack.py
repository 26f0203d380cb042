"""The acknowledgement pages in a real browser: headless Chromium opens the email's link
(`/ack/<token>`) and the SMS's short link (`/a/<id>`) of a real page, as the person paged would,
reads what it is about, clicks Acknowledge, and the escalation stops.

The router runs in-process on 127.0.0.1 with a real Alertmanager holding the acknowledgements
(tests/ack_rig.py); Chromium is Debian's (tests/browser.py).
"""

from __future__ import annotations

import dataclasses
import re
import time
from collections.abc import Iterator
from datetime import timedelta

import pytest

from receiver.ack import tokens
from tests.ack_rig import ACK_SECRET, ALICE, BOB, AckRig
from tests.browser import Browser, chromium
from tests.helpers import metric


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Browser]:
    """One Chromium for the module (it takes a second or two to start), fresh profile."""
    with chromium(tmp_path_factory.mktemp("chromium-profile")) as started:
        yield started


@pytest.fixture
async def fresh(browser: Browser) -> Browser:
    """The module's browser at a desktop size, as each test starts."""
    await browser.desktop()
    return browser


def email_link(rig: AckRig) -> str:
    [mail] = rig.emails()
    text = next(c["value"] for c in mail["content"] if c["type"] == "text/plain")
    match = re.search(r"Acknowledge \(pauses escalation\): (\S+)", text)
    assert match, text
    return match.group(1)


def sms_link(rig: AckRig) -> str:
    text = rig.sms(ALICE)[-1]
    match = re.search(r" (http://\S+/a/[0-9A-Za-z]{10}) Reply ACK [0-9A-Z]{5}$", text)
    assert match, text
    return match.group(1)


def acks(rig: AckRig, channel: str) -> float:
    return metric(rig.service, "oncall_router_acknowledgements_total", {"channel": channel})


async def acknowledge_in_browser(browser: Browser, rig: AckRig, link: str, channel: str) -> None:
    """Open the link, read the page, click Acknowledge, read the confirmation; then the next
    webhook, past bob's step, pages nobody new."""
    await browser.open(link)
    assert await browser.heading() == "Acknowledge this page?"
    page = await browser.text()
    assert "DiskFull (service=db)" in page, page  # what: the alert, from Alertmanager
    assert "disk full on e2e-db-1" in page, page  # its summary
    assert "A critical alert page for alice, firing since" in page, page
    assert "pauses its escalation for 30 minutes" in page, page
    assert await browser.buttons() == ["Acknowledge"]
    assert await rig.markers() == []  # opening the page acknowledged nothing

    await browser.click("Acknowledge")
    assert await browser.heading() == "Acknowledged"
    assert re.search(r"Escalation is paused until \d\d:\d\d GMT", await browser.text())
    assert await browser.buttons() == []
    [marker] = await rig.markers()
    labels = {m["name"]: m["value"] for m in marker["matchers"]}
    assert (marker["createdBy"], labels["oncall_router_channel"]) == ("alice", channel)
    assert acks(rig, channel) == 1

    # Bob's step is at 10 minutes: 12 minutes on, the re-send pages nobody new.
    rig.clock.offset = timedelta(minutes=12)
    await rig.fire()
    assert not rig.sms(BOB)
    assert len(rig.sms(ALICE)) == 1


async def test_email_link_acknowledges_in_a_browser(fresh: Browser, rig: AckRig) -> None:
    await rig.fire()
    link = email_link(rig)
    assert "/ack/" in link
    await acknowledge_in_browser(fresh, rig, link, "email")


async def test_sms_short_link_acknowledges_in_a_browser(fresh: Browser, rig: AckRig) -> None:
    await rig.fire()
    link = sms_link(rig)
    await acknowledge_in_browser(fresh, rig, link, "sms")
    # Back to the link later (the browser's history, a second tap): it says so, harmlessly.
    await fresh.open(link)
    await fresh.click("Acknowledge")
    assert await fresh.heading() == "Already acknowledged"
    assert "alice acknowledged it" in await fresh.text()
    assert len(await rig.markers()) == 1


async def test_expired_forged_or_unknown_links_show_the_refusal_page(
    fresh: Browser, rig: AckRig
) -> None:
    """No button on any of them, a sentence that says why, and nothing acknowledged."""
    await rig.fire()
    link = email_link(rig)
    token = tokens.verify(link.rsplit("/", 1)[1], ACK_SECRET, time.time())
    expired = tokens.sign(dataclasses.replace(token, expires=int(time.time()) - 1), ACK_SECRET)
    forged = tokens.sign(token, "not-our-secret")
    short = sms_link(rig)
    unknown = short[:-10] + ("Zz9yX8wV7u" if not short.endswith("Zz9yX8wV7u") else "Ab3dEf9hIj")
    cases = [
        (f"{rig.url}/ack/{expired}", "Not acknowledged", "this acknowledgement link has expired"),
        (f"{rig.url}/ack/{forged}", "Not acknowledged", "the token's signature is wrong"),
        (unknown, "Link not found", "This acknowledgement link is unknown or has expired"),
    ]
    for url, heading, why in cases:
        await fresh.open(url)
        assert await fresh.heading() == heading, url
        assert why in await fresh.text(), url
        assert await fresh.buttons() == [], url
    assert await rig.markers() == []


async def test_the_page_fits_a_phone(fresh: Browser, rig: AckRig) -> None:
    """At 375x667 (an iPhone SE) the button is on the first screen, nothing scrolls sideways, even
    with a long unbroken label value, and the button works."""
    await rig.fire(service="payments-api-" + "x" * 90)
    await fresh.phone(375, 667)
    await fresh.open(sms_link(rig))
    assert await fresh.heading() == "Acknowledge this page?"
    seen = await fresh.viewport()
    # Wider content would scroll sideways, or make the phone zoom the whole page out.
    assert seen.page_width <= 375, seen
    assert (seen.width, seen.height) == (375, 667), seen
    assert seen.button is not None
    box = seen.button
    # On the first screen: no scrolling, sideways or down, to reach it.
    assert box["left"] >= 0, seen
    assert box["right"] <= seen.width, seen
    assert box["top"] >= 0, seen
    assert box["bottom"] <= seen.height, seen
    assert box["height"] >= 44, seen  # a finger's target, not a pixel's
    await fresh.click("Acknowledge")
    assert await fresh.heading() == "Acknowledged"
    assert (await fresh.viewport()).page_width <= 375
    assert len(await rig.markers()) == 1
