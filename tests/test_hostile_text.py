"""Attacker-controlled alert text (labels, annotations, Sentry titles) through every channel.

Hostile values go in over HTTP and the assertions read the bytes the loopback fakes received;
hypothesis properties cover the escaping functions' promises for arbitrary text, and the SMS
segment counter is checked against an independent implementation (septets and bytes).
"""

from __future__ import annotations

import asyncio
import copy
import dataclasses
import hashlib
import hmac
import json
import math
import re
import tracemalloc
import unicodedata
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator, Iterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from receiver.channels.registry import vendor_senders
from receiver.channels.slack import SlackSender, build_message
from receiver.config.settings import Settings
from receiver.messages import escape, render, sms_length, spoken, templates
from receiver.model import AckRef, AlertGroup, Channel, Link, Notification
from receiver.routing.plan import plan
from receiver.sources import alertmanager
from receiver.web.app import create_app
from receiver.web.service import Service
from tests.fakes import FakeSendGrid, FakeSlack, FakeTwilio
from tests.fakes.slack import TEST_BOT_TOKEN
from tests.fakes.twilio import TEST_ACCOUNT_SID
from tests.helpers import NOW, config_for, dry_run_router, fixture, settings_for, shipped_config

CONFIG = shipped_config()
TZ = CONFIG.timezone
SENTRY_SECRET = "sentry-client-secret-hostile"
REF = AckRef("BEYC2", "eyJncm91cCI6IjEifQ.c2lnbmF0dXJl", "https://oncall.example.com")

# -- the corpus -----------------------------------------------------------------------------------

MENTIONS = "<!channel> <!here> <!everyone> <@U024BE7LH> <#C024BE7LR|general> <!subteam^S1>"
PHISH = "<https://evil.example|Sign in again>"
BIDI = "\u202eexe.txt\u202c \u200bzero\u200c\u200d\u200e\u200f \u2066iso\u2069 \ufeffbom"
CRLF = "disk full\r\nBcc: victim@example.com\nX-Injected: 1"
EMOJI = "🔥 payments down 👨‍👩‍👧"
GSM_EXTENSION = "cost {€5} [x|y] ^~\\"
TYPOGRAPHIC = "it\u2019s \u201cdown\u201d \u2013 really\u2026 now"  # curly quotes, dash, ellipsis
NON_LATIN = "支付服务 ошибка خطأ"
# The audit's runbook: `>` ends the link early, `*<!channel>*` becomes a live @channel and the
# rest a link to evil.example. Not well-formed (spaces), so it must be dropped, not patched.
BREAKOUT_URL = (
    "https://runbooks.example.com/a?x=1&y=2>*<!channel>* <https://evil.example|Reset your password"
)
# Well-formed per WHATWG, but `|`, `>` and `<` must not reach Slack raw inside `<url|title>`.
PIPE_URL = "http://prometheus.example:9090/graph?g0.expr=a|b>0<1&g0.tab=1"

HOSTILE = (MENTIONS, PHISH, BIDI, CRLF, EMOJI, GSM_EXTENSION, TYPOGRAPHIC, NON_LATIN)

# Invisible format characters (Cf: bidi overrides and isolates, zero-width, BOM) never reach a
# reader; nor do controls other than the line breaks a multi-line body may have.
_FORBIDDEN = re.compile(r"<[!@#]|<https?:|<mailto:")


def invisible(text: str) -> list[str]:
    return [f"U+{ord(c):04X}" for c in text if unicodedata.category(c) in ("Cf", "Cs")]


def controls(text: str, allowed: str = "") -> list[str]:
    return [
        f"U+{ord(c):04X}"
        for c in text
        if c not in allowed and (unicodedata.category(c) in ("Cc", "Zl", "Zp"))
    ]


# -- Slack: every text field, and what may be left of our own control sequences ---------------

# Our own sequences: the localised time, and links whose URL is %-encoded by escape.web_url.
_OUR_DATE = re.compile(r"<!date\^\d+\^(?:\{date_short_pretty\} )?\{time\}\|[^<>|&]*>")
# Titles: the alerts' own links, the URL annotations' (from their keys), Alertmanager's.
_OUR_LINK = re.compile(
    r"<https?://[A-Za-z0-9.:\[\]-]+(?:[!#$%'()*+,\-./:;=?@_~A-Za-z0-9]|&amp;)*"
    r"\|(?:Source|Runbook|Dashboard|Sentry issue|Sentry alert|View in Alertmanager"
    r"|Silence this group)>"
)


def slack_texts(value: Any) -> Iterator[str]:
    """Every `text` string of a Slack message (blocks, fields, attachments, buttons)."""
    if isinstance(value, dict):
        for key, item in value.items():
            if key == "text" and isinstance(item, str):
                yield item
            else:
                yield from slack_texts(item)
    elif isinstance(value, list):
        for item in value:
            yield from slack_texts(item)


def assert_slack_safe(message: dict[str, Any]) -> None:
    for text in slack_texts(message):
        rest = _OUR_LINK.sub("", _OUR_DATE.sub("", text))
        assert "<" not in rest, text
        assert ">" not in rest, text
        assert not _FORBIDDEN.search(rest), text
        assert not invisible(text), text
        assert "\r" not in text, text


# -- a service wired to the fakes, with Sentry signing -------------------------------------------


@dataclasses.dataclass
class Wire:
    client: TestClient[web.Request, web.Application]
    service: Service
    slack: FakeSlack
    twilio: FakeTwilio
    sendgrid: FakeSendGrid

    async def alertmanager(self, payload: dict[str, Any]) -> int:
        response = await self.client.post("/webhooks/alertmanager", json=payload)
        return response.status

    async def sentry(self, resource: str, payload: dict[str, Any]) -> int:
        body = json.dumps(payload).encode()
        signature = hmac.new(SENTRY_SECRET.encode(), body, hashlib.sha256).hexdigest()
        headers = {
            "Content-Type": "application/json",
            "Sentry-Hook-Signature": signature,
            "Sentry-Hook-Resource": resource,
        }
        response = await self.client.post("/webhooks/sentry", data=body, headers=headers)
        async with asyncio.timeout(5):  # Sentry is delivered in a background task
            await asyncio.gather(*self.service.tasks)
        return response.status

    def slack_messages(self) -> list[dict[str, Any]]:
        return [r.json() for r in self.slack.requests]

    def twilio_forms(self, resource: str) -> list[dict[str, str]]:
        return [
            r.form()
            for r in self.twilio.requests_to(f"/2010-04-01/Accounts/{TEST_ACCOUNT_SID}/{resource}")
        ]

    def emails(self) -> list[dict[str, Any]]:
        return [r.json() for r in self.sendgrid.requests]


@pytest.fixture
async def wire(
    fake_slack: FakeSlack, fake_twilio: FakeTwilio, fake_sendgrid: FakeSendGrid
) -> AsyncIterator[Wire]:
    config = config_for(fake_slack)
    settings = dataclasses.replace(
        settings_for(fake_slack, fake_twilio, fake_sendgrid), sentry_client_secret=SENTRY_SECRET
    )
    service, _ = dry_run_router(config, settings, dry_run=False)
    app = create_app(service, lambda session: vendor_senders(session, settings, config))
    async with TestClient(TestServer(app)) as client:
        yield Wire(client, service, fake_slack, fake_twilio, fake_sendgrid)


def hostile_alertmanager(value: str) -> dict[str, Any]:
    """The critical fixture with `value` in the labels and annotations a message shows (routing
    labels, severity, kept), the audit's runbook URL and a generator URL with `|`, `<`, `>`."""
    payload: dict[str, Any] = copy.deepcopy(fixture("alertmanager-firing-critical.json"))
    for alert in payload["alerts"]:
        alert["labels"].update({"alertname": f"HighErrorRate {value}", "cluster": f"prod {value}"})
        alert["labels"]["instance"] = value
        alert["annotations"] = {
            "summary": f"5xx above 5% {value}",
            "description": f"ratio is 12% {value}",
            "runbook_url": BREAKOUT_URL,
        }
        alert["generatorURL"] = PIPE_URL
    payload["commonLabels"] = {"severity": "critical"}
    payload["groupLabels"] = {"alertname": f"HighErrorRate {value}"}
    return payload


def assert_delivered_safely(wire: Wire) -> None:
    """What every fake received: escaped Slack, clean SMS, call, email; no trace of the breakout
    URL (text that merely mentions evil.example is shown, as text)."""
    messages = wire.slack_messages()
    assert messages
    for message in messages:
        assert_slack_safe(message)
        assert "Reset your password" not in json.dumps(message)
    for form in wire.twilio_forms("Messages"):
        body = form["Body"]
        assert not invisible(body), body
        assert not controls(body), body
        assert "Reset your password" not in body
        assert sms_length.utf16_units(body) <= render.SMS_LIMIT
    for form in wire.twilio_forms("Calls"):
        twiml = form["Twiml"]
        assert not invisible(twiml), twiml
        says = [say.text or "" for say in ET.fromstring(twiml.encode()).iter("Say")]  # noqa: S314
        assert says
        assert all(not controls(say) for say in says)
    emails = wire.emails()
    for email in emails:
        subject = email["subject"]
        assert not controls(subject), subject
        assert not invisible(subject), subject
        for part in email["content"]:
            assert not invisible(part["value"]), part["type"]


@pytest.mark.parametrize("value", HOSTILE, ids=lambda v: repr(v[:12]))
async def test_hostile_alertmanager_text_reaches_every_channel_inert(
    wire: Wire, value: str
) -> None:
    """Each hostile label and annotation reaches every vendor escaped, cleaned or dropped."""
    assert await wire.alertmanager(hostile_alertmanager(value)) == 200
    assert len(wire.twilio_forms("Messages")) == 1
    assert len(wire.twilio_forms("Calls")) == 1
    assert len(wire.emails()) == 2
    assert_delivered_safely(wire)


async def test_mentions_and_links_arrive_as_visible_text(wire: Wire) -> None:
    """Mentions and `<url|title>` show as text; breakout runbook dropped, `|` URL encoded."""
    assert await wire.alertmanager(hostile_alertmanager(f"{MENTIONS} {PHISH}")) == 200
    [message] = wire.slack_messages()
    assert "&lt;!channel&gt;" in message["text"]
    assert "&lt;https://evil.example|Sign in again&gt;" in message["text"]
    assert "&lt;!everyone&gt;" in message["blocks"][1]["text"]["text"]
    assert "&lt;!here&gt;" in message["blocks"][0]["text"]["text"]
    links = next(t for t in slack_texts(message["blocks"]) if "|Source>" in t)
    assert "|Runbook>" not in links
    assert "<http://prometheus.example:9090/graph?g0.expr=a%7Cb%3E0%3C1&amp;g0.tab=1|Source>" in (
        links
    )
    [sms] = wire.twilio_forms("Messages")
    # The runbook is dropped here too; the SMS links to the group in Alertmanager instead, its
    # labels %-encoded into the filter (no raw `<` or space ends or splits the link).
    assert "runbooks.example.com" not in sms["Body"]
    link = sms["Body"].rsplit(" ", 1)[1]
    assert link.startswith("http://alertmanager.monitoring.svc:9093/#/alerts?filter=%7Balertname")
    assert "%3C%21channel%3E" in link
    assert not set("<>| ") & set(link)


async def test_crlf_and_bidi_leave_no_trace_in_subject_header_and_sms(wire: Wire) -> None:
    """CR/LF start no header line; U+202E and zero-width characters reach no reader."""
    assert await wire.alertmanager(hostile_alertmanager(f"{CRLF} {BIDI}")) == 200
    [message] = wire.slack_messages()
    header = message["blocks"][0]["text"]["text"]
    assert "\n" not in header
    assert "Bcc: victim@example.com" in header  # shown as text, on the one line
    for email in wire.emails():
        assert email["subject"].startswith("[CRITICAL] HighErrorRate disk full Bcc:")
        assert "exe.txt" in email["subject"]
    [sms] = wire.twilio_forms("Messages")
    assert "\n" not in sms["Body"]
    assert "\u202e" not in sms["Body"]
    [call] = wire.twilio_forms("Calls")
    assert "\u202e" not in call["Twiml"]


async def test_emoji_and_other_scripts_are_kept(wire: Wire) -> None:
    """Escaping removes the invisible, not the text: emoji and non-Latin scripts arrive."""
    assert await wire.alertmanager(hostile_alertmanager(f"{EMOJI} {NON_LATIN}")) == 200
    [message] = wire.slack_messages()
    assert "🔥 payments down" in message["text"]
    assert NON_LATIN in message["blocks"][0]["text"]["text"]
    assert NON_LATIN in wire.twilio_forms("Messages")[0]["Body"]
    assert all(NON_LATIN in email["subject"] for email in wire.emails())


async def test_hostile_sentry_title_through_every_channel(wire: Wire) -> None:
    """A hostile Sentry title, text and web_url are escaped, cleaned or dropped everywhere."""
    payload = copy.deepcopy(fixture("sentry-metric-alert-critical.json"))
    payload["data"]["description_title"] = f"Critical: {MENTIONS} {PHISH} {CRLF} {BIDI}"
    payload["data"]["description_text"] = f"{PHISH}\n{MENTIONS}"
    payload["data"]["web_url"] = BREAKOUT_URL
    assert await wire.sentry("metric_alert", payload) == 202
    [message] = wire.slack_messages()
    assert "&lt;!channel&gt;" in message["text"]
    assert "|Sentry alert>" not in json.dumps(message)  # the breakout URL was dropped
    assert wire.twilio_forms("Messages")
    assert wire.emails()
    assert_delivered_safely(wire)


# URL annotations become links only when they are well-formed http(s) URLs; the rest is text.
URL_ANNOTATIONS = {
    "dashboard_url": "https://grafana.example.com/d/x?a=1&b=<2>|c",
    "logs_url": "javascript:alert(1)",
    "wiki_url": BREAKOUT_URL,
    "playbook_url": "https://runbooks.example.com@evil.example/reset",
    "note": f"see https://x.example/ now {MENTIONS}",
}


async def test_url_annotations_are_links_only_when_well_formed(wire: Wire) -> None:
    """Every annotation that is a URL is offered as a link, %-encoded; another scheme, user info
    or text around a URL is no link anywhere (Slack, email, SMS)."""
    payload = hostile_alertmanager(MENTIONS)
    for alert in payload["alerts"]:
        alert["annotations"].update(URL_ANNOTATIONS)
        alert["labels"]["team"] = f"{PHISH} {BIDI}"  # shown in the compact label list
    assert await wire.alertmanager(payload) == 200
    assert_delivered_safely(wire)
    [message] = wire.slack_messages()
    texts = " ".join(slack_texts(message))
    assert "<https://grafana.example.com/d/x?a=1&amp;b=%3C2%3E%7Cc|Dashboard>" in texts
    for gone in ("|Logs>", "|Wiki>", "|Playbook>", "|Note>", "javascript", "evil.example/reset"):
        assert gone not in texts
    assert "`team=&lt;https://evil.example|Sign in again&gt; exe.txt" in texts  # as text
    for email in wire.emails():
        text, page = (part["value"] for part in email["content"])
        assert 'href="https://grafana.example.com/d/x?a=1&amp;b=%3C2%3E%7Cc"' in page
        assert "javascript" not in page
        assert "Logs:" not in text
        assert "evil.example/reset" not in text + page
    [sms] = wire.twilio_forms("Messages")
    assert "javascript" not in sms["Body"]


async def test_hostile_sentry_facts_through_every_channel(wire: Wire) -> None:
    """Sentry's counts, release and culprit are shown (as text) and escaped like the title."""
    payload = copy.deepcopy(fixture("sentry-issue-created.json"))
    issue = payload["data"]["issue"]
    issue.update(
        {
            "level": "fatal",
            "count": f"12 {MENTIONS}",
            "userCount": f"3 {BIDI}",
            "culprit": f"{PHISH} {CRLF}",
            "shortId": f"PAY-1 {MENTIONS}",
            "lastSeen": "2026-03-16T09:18:40Z",
        }
    )
    assert await wire.sentry("issue", payload) == 202
    assert_delivered_safely(wire)
    [message] = wire.slack_messages()
    texts = " ".join(slack_texts(message))
    assert "*Events:*\n12 &lt;!channel&gt;" in texts
    assert "*Culprit:*\n&lt;https://evil.example|Sign in again&gt;" in texts
    [call] = wire.twilio_forms("Calls")
    assert "12" in call["Twiml"]
    assert "users affected" in call["Twiml"]


async def test_thread_reply_is_escaped(
    fake_slack: FakeSlack, session: aiohttp.ClientSession
) -> None:
    """What the router says in a followed message's thread is escaped like the message."""
    destinations = config_for(fake_slack).slack
    settings = Settings(slack_bot_token=TEST_BOT_TOKEN, slack_api_url=f"{fake_slack.url}/api")
    sender = SlackSender(session, settings, TZ, destinations)
    n = slack_of(alertmanager.parse(hostile_alertmanager(MENTIONS)))
    ref = await sender.send(n)
    assert ref is not None
    stage_text = f"Acknowledged by {MENTIONS} {PHISH} via sms"
    await sender.send(dataclasses.replace(n, follows=ref, stage="0|ack", stage_text=stage_text))
    post, update, reply = (r.json() for r in fake_slack.requests)
    assert update["ts"] == ref.ts
    assert reply["thread_ts"] == ref.ts
    assert reply["text"].startswith("Acknowledged by &lt;!channel&gt; &lt;!here&gt;")
    for message in (post, update, reply):
        assert_slack_safe(message)


def slack_of(group: AlertGroup) -> Notification:
    result = plan(CONFIG, group, NOW, remembered=False)
    return next(n for n in result.notifications if n.channel is Channel.SLACK)


# -- properties: any label text -------------------------------------------------------------------

# Everything, with the characters that matter drawn often.
_SPECIAL = st.sampled_from(
    [
        *"<>&|!@#*_~`\r\n\t\x00\x1b\x7f\x85\u2028\u2029\u200b\u200d\u202e\u2066\ufeff€{}[]^\\",
        *"\u2018\u2019\u201c\u201d\u2013\u2014\u2026\u00a0",
        *("<!channel>", "<!here>", "<@U1>", "<#C1|x>", "<https://e.example|x>", "&lt;", "👨‍👩‍👧"),
    ]
)
ANY_TEXT = st.lists(st.one_of(st.text(max_size=8), _SPECIAL), max_size=12).map("".join)
PROPERTIES = hypothesis_settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


def notification(channel: Channel, text: str, url: str = "", ack: bool = False) -> Notification:
    """The critical fixture's first notification on `channel`, with `text` in every label and
    annotation a message shows (the compact label list's `team` too) and `url` as both links
    and as a URL annotation."""
    group = alertmanager.parse(fixture("alertmanager-firing-critical.json"))
    labels = {"alertname": text or "x", "service": text, "instance": text, "team": text}
    alerts = tuple(
        dataclasses.replace(
            a,
            labels={**a.labels, **labels},
            annotations={"summary": text, "description": f"{text}!"}
            | ({"dashboard_url": url} if url else {}),
            links=(Link("Source", url), Link("Runbook", url)) if url else a.links,
        )
        for a in group.alerts
    )
    group = dataclasses.replace(group, alerts=alerts, group_labels={"alertname": text or "x"})
    n = next(
        n for n in plan(CONFIG, group, NOW, remembered=False).notifications if n.channel is channel
    )
    return dataclasses.replace(n, ack=REF if ack else None)


@PROPERTIES
@given(ANY_TEXT, st.one_of(ANY_TEXT, st.just(BREAKOUT_URL), st.just(PIPE_URL)))
def test_no_slack_control_sequence_survives_any_label_text(text: str, url: str) -> None:
    """No Slack text holds `<!`, `<@`, `<#`, `<http` or raw `<`/`>` beyond our own."""
    n = notification(Channel.SLACK, text, "https://r.example/" + url)
    assert_slack_safe(build_message(n, TZ, "http://am.example:9093"))
    override = dataclasses.replace(n, templates={"slack": "{{ summary }} {{ link }}"})
    assert_slack_safe(build_message(override, TZ))


@PROPERTIES
@given(ANY_TEXT)
def test_a_severity_word_is_escaped_like_any_label(text: str) -> None:
    """The team's word comes from a label value: in every Slack text it is escaped."""
    n = notification(Channel.SLACK, "x")
    assert n.paging is not None
    word = dataclasses.replace(n.paging, severity_word=text)
    assert_slack_safe(build_message(dataclasses.replace(n, paging=word), TZ, "http://am:9093"))


@PROPERTIES
@given(ANY_TEXT)
def test_no_email_header_has_a_control_character(text: str) -> None:
    """The subject, built in or templated, holds no control or invisible character."""
    n = notification(Channel.EMAIL, text)
    for subject in (
        templates.email_subject(n, TZ),
        templates.email_subject(
            dataclasses.replace(n, templates={"email_subject": "{{ summary }}"}), TZ
        ),
    ):
        assert not controls(subject), subject
        assert not invisible(subject), subject


@PROPERTIES
@given(st.one_of(st.text(max_size=400), ANY_TEXT))
def test_slack_link_url_never_lets_a_link_break(url: str) -> None:
    """A URL either becomes one that cannot end or split `<url|title>`, or is dropped."""
    safe = escape.slack_link_url("https://r.example/" + url)
    if safe is not None:
        assert not set('<>|& "\n\r\t') & set(safe.replace("&amp;", "")), safe
        assert safe.isascii()
    assert escape.slack_link_url("javascript:alert(1)//" + url) is None


# -- SMS: billed segments -------------------------------------------------------------------------


def test_a_short_alert_with_quote_and_euro_is_one_segment() -> None:
    """A curly apostrophe (transliterated) and `€` keep a short page GSM-7, one segment."""
    n = notification(Channel.SMS, "x", ack=True)
    alerts = tuple(
        dataclasses.replace(
            a,
            annotations={
                "summary": "Payment\u2019s \u201cgateway\u201d \u2013 €5 {fee} failing\u2026"
            },
        )
        for a in n.alerts
    )
    text = templates.sms_text(dataclasses.replace(n, alerts=alerts), TZ)
    assert text.endswith(" Reply ACK BEYC2")
    assert 'Payment\'s "gateway" - €5' in text
    assert reference_segments(text) == (1, "GSM-7")


def test_an_emoji_late_in_the_summary_is_cut_away_to_keep_one_segment() -> None:
    """When only the summary's tail needs UCS-2, the summary is shortened before it."""
    n = notification(Channel.SMS, "x")
    long_summary = "payments-api 5xx error rate above 5 percent for ten minutes now 🔥"
    labels = {"alertname": "HighErrorRate", "severity": "critical", "service": "payments-api"}
    alerts = tuple(
        dataclasses.replace(a, labels=labels, annotations={"summary": long_summary})
        for a in n.alerts
    )
    text = templates.sms_text(dataclasses.replace(n, alerts=alerts), TZ)
    assert "🔥" not in text
    assert "..." in text
    assert reference_segments(text) == (1, "GSM-7")


@PROPERTIES
@given(ANY_TEXT, st.booleans())
def test_sms_is_one_segment_whenever_the_summary_allows(summary: str, ack: bool) -> None:
    """One billed segment when the summary's first 17 characters are GSM-7; code kept."""
    n = notification(Channel.SMS, "x", ack=ack)
    alerts = tuple(
        dataclasses.replace(
            a,
            labels={"alertname": "HighErrorRate", "severity": "critical", "cluster": "prod-eu-1"},
            annotations={"summary": summary},
        )
        for a in n.alerts
    )
    text = templates.sms_text(dataclasses.replace(n, alerts=alerts), TZ)
    assert sms_length.utf16_units(text) <= render.SMS_LIMIT
    assert not controls(text)
    assert not invisible(text)
    if ack:
        assert text.endswith(" Reply ACK BEYC2")
    if sms_length.is_gsm7(escape.sms(summary)[:17]):
        assert reference_segments(text)[0] == 1, text


def test_a_long_message_keeps_its_code_within_1600_units() -> None:
    """Emoji count two UTF-16 units against Twilio's 1600; the code is never cut."""
    n = notification(Channel.SMS, "🔥" * 2000, ack=True)
    text = templates.sms_text(n, TZ)
    assert text.endswith(" Reply ACK BEYC2")
    assert sms_length.utf16_units(text) <= 1600
    assert sms_length.utf16_units(text) > 1590


# -- an independent segment counter --------------------------------------------------------------

# GSM 03.38 by code: the basic table in order (ESC at 0x1B as a placeholder) and the extension
# table's codes, so the reference packs real septets and UTF-16 bytes rather than counting.
_BASIC_TABLE = (
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
_EXTENSION_CODES = {
    "\f": 0x0A,
    "^": 0x14,
    "{": 0x28,
    "}": 0x29,
    "\\": 0x2F,
    "[": 0x3C,
    "~": 0x3D,
    "]": 0x3E,
    "|": 0x40,
    "€": 0x65,
}


def _septets(c: str) -> list[int] | None:
    if c != "\x1b" and (code := _BASIC_TABLE.find(c)) >= 0:
        return [code]
    if c in _EXTENSION_CODES:
        return [0x1B, _EXTENSION_CODES[c]]
    return None


def reference_segments(text: str) -> tuple[int, str]:
    """Segments and encoding as a carrier packs them: 1120 bits a message, 48 of them the
    concatenation header when split; an ESC pair or a surrogate pair never straddles two parts."""
    assert len(_BASIC_TABLE) == 128
    units = [_septets(c) for c in text]
    if all(u is not None for u in units):
        chunks = [u for u in units if u is not None]
        bits, encoding = 7, "GSM-7"
    else:
        chunks = [list(c.encode("utf-16-be")) for c in text]
        bits, encoding = 8, "UCS-2"
    total = sum(len(c) for c in chunks) * bits
    if total <= 1120:
        return 1, encoding
    room = (1120 - 48) // bits  # 153 septets, or 134 bytes: 67 UTF-16 units
    parts, used = 1, 0
    for chunk in chunks:
        if used + len(chunk) > room:
            parts, used = parts + 1, 0
        used += len(chunk)
    return parts, encoding


def test_reference_matches_known_counts() -> None:
    """The reference itself: 160 GSM-7 is one, 161 is two; 70 UCS-2 one, 71 two; € is two."""
    assert reference_segments("a" * 160) == (1, "GSM-7")
    assert reference_segments("a" * 161) == (2, "GSM-7")
    assert reference_segments("€" * 80) == (1, "GSM-7")
    assert reference_segments("€" * 81) == (2, "GSM-7")
    assert reference_segments("a" * 152 + "€" + "a" * 10) == (2, "GSM-7")
    assert reference_segments("a" * 152 + "€" + "a" * 152) == (3, "GSM-7")  # ESC pair moved
    assert reference_segments("\u2019" * 70) == (1, "UCS-2")
    assert reference_segments("\u2019" * 71) == (2, "UCS-2")
    assert reference_segments("🔥" * 35) == (1, "UCS-2")
    assert reference_segments("a" * 66 + "🔥" + "aaa") == (2, "UCS-2")
    assert reference_segments("a" * 66 + "🔥" * 34) == (3, "UCS-2")  # the pair starts part two


def test_counter_examples() -> None:
    """The audit's cases: `{}` cost two septets, one U+2019 or emoji turns a page into UCS-2."""
    page = "x" * 150
    assert sms_length.measure(page + "{}").segments == 1
    assert sms_length.measure(page + "{}[]|").segments == 1  # 160 septets exactly
    assert sms_length.measure(page + "x{}[]|").segments == 2
    assert sms_length.measure(page + "\u2019").segments == math.ceil(151 / 67)
    assert sms_length.measure("😀" * 35) == sms_length.Length(sms_length.Encoding.UCS2, 70, 1)
    assert sms_length.measure("😀" * 36).segments == 2


_SMS_ALPHABET = st.one_of(
    st.sampled_from(_BASIC_TABLE.replace("\x1b", "")),
    st.sampled_from(list(_EXTENSION_CODES)),
    st.sampled_from(list("\u2018\u2019\u201c\u201d\u2013\u2014\u2026\u00a0éç€")),
    st.characters(codec="utf-8"),
)


@hypothesis_settings(max_examples=400, deadline=None)
@given(
    st.one_of(
        st.text(_SMS_ALPHABET, max_size=400),
        st.text(st.sampled_from(_BASIC_TABLE.replace("\x1b", "") + "{}[]|€"), max_size=800),
    )
)
def test_counter_agrees_with_the_reference(text: str) -> None:
    """sms_length's segments and encoding equal the bit-packing reference for any text."""
    length = sms_length.measure(text)
    assert (length.segments, str(length.encoding)) == reference_segments(text)
    assert sms_length.fits_one_segment(text) == (length.segments == 1)


def test_remembered_alert_text_stays_small_whatever_its_size() -> None:
    """Spoken words and checked URLs are remembered, since they repeat; a stranger's long
    annotation is worked on each time and never kept (1,024 of a megabyte would be a gigabyte)."""
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for i in range(300):
            assert spoken.words(f"{i}: " + "x" * 8_000)
            # Longer than what is remembered, short enough to be a link.
            assert escape.web_url(f"https://example.com/{i}?" + "9" * 2_800) is not None
        retained = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert retained < 1024 * 1024, f"{retained / 2**20:.1f} MiB kept"
    # No link carries a URL this long: refused before any work (or any cache) sees it.
    assert escape.web_url("https://example.com/?" + "9" * escape.MAX_URL) is None
