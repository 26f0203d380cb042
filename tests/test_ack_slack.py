"""Slack buttons end to end: the signature, the buttons, and each click against a real
Alertmanager 0.25 (the store of acknowledgements and silences) with the loopback fakes."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl, urlencode

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from prometheus_client import CollectorRegistry

from receiver.ack import tokens
from receiver.ack.store import ACK_LABEL, sms_code
from receiver.ack.tokens import AckToken
from receiver.channels.registry import vendor_senders
from receiver.channels.slack import SlackSender, build_message
from receiver.config.settings import Settings
from receiver.messages.view import display_name
from receiver.metrics import Metrics
from receiver.model import AlertGroup, Channel, Notification, Severity
from receiver.sources import alertmanager as am_source
from receiver.web import auth
from receiver.web.app import create_app
from receiver.web.callbacks.slack import PATH, _slack_origin
from receiver.web.logs import JsonFormatter, Redactor
from receiver.web.service import Service
from tests.alertmanager_process import Alertmanager, post_alert
from tests.fakes import FakeSendGrid, FakeSlack, FakeTwilio, RecordedRequest
from tests.fakes.slack import TEST_BOT_TOKEN, block_kit_error, find_button, slack_signature
from tests.fakes.twilio import API_VERSION
from tests.helpers import (
    config_for,
    dry_run_router,
    fixture,
    free_port,
    held_port,
    metric,
    settings_for,
)

SIGNING_SECRET = "slack-signing-secret-for-tests"
ACK_SECRET = "ack-secret-for-the-slack-tests"
ALICE = "U0A11CE001"  # alice's Slack id in routing.yaml
STRANGER = "U0NOBODY99"  # in the workspace, not in the routing file
RECEIVER = am_source.RECEIVER
GROUP_BY = ("alertname", "service")
DISK_FULL = {"alertname": "DiskFull", "service": "db", "severity": "critical", "instance": "db-1"}
SENTRY_ISSUE = {
    "alertname": "SentryIssue",
    "service": "checkout",
    "severity": "critical",
    "source": "sentry",
    "project": "checkout",
}

# Slack's published example (python-slack-sdk tests/slack_sdk/signature/test_signature_verifier.py).
VECTOR_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
VECTOR_TS = "1531420618"
VECTOR_BODY = (
    b"token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&"
    b"channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&"
    b"command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2F"
    b"T1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&"
    b"trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c"
)
VECTOR_SIGNATURE = "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503"


# -- the signature ----------------------------------------------------------------------------


def test_slack_published_signature_vector() -> None:
    """Slack's own example verifies, and the fake signs it exactly as Slack does."""
    now = float(VECTOR_TS)
    assert auth.slack_signature_ok(VECTOR_BODY, VECTOR_TS, VECTOR_SIGNATURE, VECTOR_SECRET, now)
    assert slack_signature(VECTOR_SECRET, VECTOR_TS, VECTOR_BODY) == VECTOR_SIGNATURE


@pytest.mark.parametrize(
    ("body", "timestamp", "signature", "secret", "now"),
    [
        pytest.param(VECTOR_BODY + b"x", VECTOR_TS, VECTOR_SIGNATURE, VECTOR_SECRET, 0, id="body"),
        pytest.param(VECTOR_BODY, VECTOR_TS, VECTOR_SIGNATURE, "another-secret", 0, id="secret"),
        pytest.param(VECTOR_BODY, "1531420619", VECTOR_SIGNATURE, VECTOR_SECRET, 0, id="ts"),
        pytest.param(VECTOR_BODY, VECTOR_TS, VECTOR_SIGNATURE, VECTOR_SECRET, 301, id="stale"),
        pytest.param(VECTOR_BODY, VECTOR_TS, VECTOR_SIGNATURE, VECTOR_SECRET, -301, id="future"),
        pytest.param(VECTOR_BODY, VECTOR_TS, None, VECTOR_SECRET, 0, id="no-signature"),
        pytest.param(VECTOR_BODY, None, VECTOR_SIGNATURE, VECTOR_SECRET, 0, id="no-timestamp"),
        pytest.param(VECTOR_BODY, "soon", VECTOR_SIGNATURE, VECTOR_SECRET, 0, id="not-a-number"),
        pytest.param(
            VECTOR_BODY, VECTOR_TS, "v1=" + VECTOR_SIGNATURE[3:], VECTOR_SECRET, 0, id="version"
        ),
    ],
)
def test_bad_signatures_are_refused(
    body: bytes, timestamp: str | None, signature: str | None, secret: str, now: float
) -> None:
    """A changed body, secret or timestamp, a stale or missing header: not Slack."""
    assert not auth.slack_signature_ok(body, timestamp, signature, secret, float(VECTOR_TS) + now)


@pytest.mark.parametrize("skew", [-300, 300])
def test_replay_window_edges(skew: int) -> None:
    """Five minutes either way is still accepted (Slack's own window)."""
    now = float(VECTOR_TS) + skew
    assert auth.slack_signature_ok(VECTOR_BODY, VECTOR_TS, VECTOR_SIGNATURE, VECTOR_SECRET, now)


# -- the buttons ------------------------------------------------------------------------------

ACK_SETTINGS = Settings(
    ack_secret=ACK_SECRET,
    alertmanager_url="http://alertmanager.example:9093",
    public_url="https://oncall.example.com",
)


def slack_message(
    name: str = "alertmanager-firing-critical.json",
    settings: Settings = ACK_SETTINGS,
    labels: dict[str, str] | None = None,
) -> tuple[Notification, dict[str, Any]]:
    """The Slack notification a fixture group makes (`labels` added to every alert), and its
    message."""
    body = fixture(name)
    for alert in body["alerts"]:
        alert["labels"].update(labels or {})
    return message_for(body, settings)


def message_for(
    body: dict[str, Any], settings: Settings = ACK_SETTINGS
) -> tuple[Notification, dict[str, Any]]:
    service, _ = dry_run_router(settings=settings)
    notifications = service.plan(am_source.parse(body)).notifications
    n = next(n for n in notifications if n.channel is Channel.SLACK)
    return n, build_message(n, service.config.timezone, settings.alertmanager_url)


def actions_of(message: dict[str, Any]) -> list[dict[str, Any]]:
    return [b for b in message["blocks"] if b["type"] == "actions"]


def test_firing_critical_message_has_buttons() -> None:
    """Acknowledge and Silence 1h, each carrying the signed token, in a valid message."""
    n, message = slack_message()
    assert n.ack is not None
    [block] = actions_of(message)
    assert block["block_id"] == f"ack:{n.ack.code}"
    buttons = {e["action_id"]: e for e in block["elements"]}
    assert list(buttons) == ["ack", "silence"]
    assert buttons["ack"]["text"]["text"] == "Acknowledge"
    assert buttons["ack"]["style"] == "primary"
    assert buttons["silence"]["text"]["text"] == "Silence 1h"
    assert buttons["silence"]["style"] == "danger"
    assert "confirm" in buttons["silence"]
    assert {b["value"] for b in buttons.values()} == {n.ack.token}
    assert block_kit_error(message["blocks"]) is None


def test_silence_label_says_the_configured_duration() -> None:
    """The label follows acknowledgement.silence_for."""
    n, _ = slack_message()
    for seconds, label in [(1800, "Silence 30m"), (5400, "Silence 1h 30m"), (86400, "Silence 24h")]:
        message = build_message(n, UTC, None, silence_for=seconds)
        [block] = actions_of(message)
        assert block["elements"][1]["text"]["text"] == label


def test_resolve_only_when_every_alert_is_from_sentry() -> None:
    """Sentry events forwarded into Alertmanager can be resolved; Prometheus alerts cannot."""
    _, sentry = slack_message(labels={"source": "sentry"})
    [block] = actions_of(sentry)
    assert [e["action_id"] for e in block["elements"]] == ["ack", "silence", "resolve"]
    assert block_kit_error(sentry["blocks"]) is None

    body = fixture("alertmanager-firing-critical.json")
    body["alerts"][0]["labels"]["source"] = "sentry"  # one of two alerts only
    [block] = actions_of(message_for(body)[1])
    assert [e["action_id"] for e in block["elements"]] == ["ack", "silence"]


def test_no_buttons_when_resolved_or_not_configured() -> None:
    """A resolved notice has nothing to press; without ACK_SECRET & co there are no tokens."""
    n, resolved = slack_message("alertmanager-resolved.json")
    assert n.ack is None
    assert actions_of(resolved) == []
    n, unconfigured = slack_message(settings=Settings())
    assert n.ack is None
    assert actions_of(unconfigured) == []


async def test_sender_uses_its_silence_duration(
    fake_slack: FakeSlack, session: aiohttp.ClientSession
) -> None:
    """SlackSender passes silence_for on, and the fake Slack takes the message."""
    n, _ = slack_message()
    settings = dataclasses.replace(
        ACK_SETTINGS, slack_bot_token=TEST_BOT_TOKEN, slack_api_url=f"{fake_slack.url}/api"
    )
    sender = SlackSender(session, settings, UTC, {}, silence_for=7200)
    await asyncio.wait_for(sender.send(n), 5)
    [message] = fake_slack.messages()
    assert find_button(message, "silence")[1]["text"]["text"] == "Silence 2h"


# -- the router, Alertmanager and the fakes ---------------------------------------------------


@dataclasses.dataclass
class Clock:
    """The router's clock: real time (Alertmanager's) moved on by `offset`."""

    offset: timedelta = timedelta()

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.offset

    def ts(self) -> int:
        return int(self().timestamp())


@dataclasses.dataclass
class Stack:
    """A router served on loopback, with real senders to the fakes and Alertmanager as store."""

    service: Service
    clock: Clock
    url: str
    session: aiohttp.ClientSession
    slack: FakeSlack
    twilio: FakeTwilio
    am: Alertmanager | None
    # The block_actions payloads Slack (the fake) posted to the router.
    clicks: list[dict[str, Any]] = dataclasses.field(default_factory=list)

    @property
    def actions_url(self) -> str:
        return self.url + PATH

    @property
    def am_url(self) -> str:
        assert self.am is not None
        return self.am.url

    async def page(self, labels: dict[str, str], started: datetime) -> dict[str, Any]:
        """What Alertmanager posts for the group: the router pages, and answers this."""
        async with self.session.post(
            self.url + "/webhooks/alertmanager", json=webhook(labels, started, self.am_url)
        ) as response:
            assert response.status == 200, await response.text()
            answer: dict[str, Any] = await response.json()
            return answer

    def message(self, alertname: str) -> dict[str, Any]:
        """The last Slack message about this alert."""
        found = [m for m in self.slack.messages() if alertname in m.get("text", "")]
        assert found, self.slack.messages()
        return found[-1]

    async def click(
        self, message: dict[str, Any], action: str, user: str = ALICE, **kw: Any
    ) -> tuple[int, str]:
        """Press a button, wait for the message update to be posted, return the answer."""
        kw.setdefault("timestamp", self.clock.ts())
        clicked = await self.slack.click(
            self.actions_url,
            message,
            action,
            user_id=user,
            user_name="alice.archer" if user == ALICE else "stranger",
            signing_secret=SIGNING_SECRET,
            **kw,
        )
        self.clicks.append(clicked.payload)
        async with asyncio.timeout(10):
            while self.service.tasks:
                await asyncio.wait(set(self.service.tasks))
        return clicked.status, clicked.body

    async def silences(self) -> list[dict[str, Any]]:
        async with self.session.get(f"{self.am_url}/api/v2/silences") as response:
            body: list[dict[str, Any]] = await response.json()
        return [s for s in body if s["status"]["state"] == "active"]

    async def alerts(self, alertname: str) -> list[dict[str, Any]]:
        params = {"filter": f'alertname="{alertname}"'}
        async with self.session.get(f"{self.am_url}/api/v2/alerts", params=params) as response:
            body: list[dict[str, Any]] = await response.json()
        return body

    def pages(self) -> list[RecordedRequest]:
        """Every SMS and call the router asked Twilio for."""
        return self.twilio.requests_to(f"/{API_VERSION}/Accounts/")


def webhook(labels: dict[str, str], started: datetime, external_url: str) -> dict[str, Any]:
    """A version-4 webhook for a one-alert group, as Alertmanager 0.25 sends it."""
    group_labels = {k: labels[k] for k in GROUP_BY}
    key = ", ".join(f'{k}="{v}"' for k, v in group_labels.items())
    annotations = {"summary": "disk full on e2e-db-1"}  # what post_alert sends
    return {
        "receiver": RECEIVER,
        "status": "firing",
        "alerts": [
            {
                "status": "firing",
                "labels": labels,
                "annotations": annotations,
                "startsAt": started.isoformat(),
                "endsAt": "0001-01-01T00:00:00Z",
                "generatorURL": "",
                "fingerprint": "",
            }
        ],
        "groupLabels": group_labels,
        "commonLabels": labels,
        "commonAnnotations": annotations,
        "externalURL": external_url,
        "version": "4",
        "groupKey": "{}:{" + key + "}",
        "truncatedAlerts": 0,
    }


def alertmanager_config() -> dict[str, Any]:
    # group_wait of an hour: Alertmanager never posts during a test; the test posts instead.
    return {
        "route": {
            "receiver": RECEIVER,
            "group_by": list(GROUP_BY),
            "group_wait": "1h",
            "group_interval": "1h",
            "repeat_interval": "4h",
        },
        "receivers": [
            {
                "name": RECEIVER,
                "webhook_configs": [{"url": f"http://127.0.0.1:{free_port()}/unused"}],
            }
        ],
    }


@asynccontextmanager
async def stack(
    slack: FakeSlack,
    twilio: FakeTwilio,
    sendgrid: FakeSendGrid,
    am: Alertmanager | None,
    **settings: Any,
) -> AsyncIterator[Stack]:
    with held_port() as listening:
        port = listening.getsockname()[1]
        async with aiohttp.ClientSession() as session:
            if am is not None:
                am.start(alertmanager_config())
                await am.ready(session)
            base = settings_for(slack, twilio, sendgrid)
            values: dict[str, Any] = {
                "slack_signing_secret": SIGNING_SECRET,
                "ack_secret": ACK_SECRET,
                "alertmanager_url": am.url if am else f"http://127.0.0.1:{free_port()}",
                "public_url": f"http://127.0.0.1:{port}",
                **settings,
            }
            config = config_for(slack)
            merged = dataclasses.replace(base, **values)
            clock = Clock()
            service = Service(
                config, merged, Metrics(CollectorRegistry()), senders={}, dry_run=False, clock=clock
            )
            app = create_app(service, lambda s: vendor_senders(s, merged, config))
            server = TestServer(
                app, host="127.0.0.1", port=port, socket_factory=lambda *_: listening
            )
            async with server:
                url = str(server.make_url("")).rstrip("/")
                yield Stack(service, clock, url, session, slack, twilio, am)


@pytest.fixture
async def live(
    alertmanager: Alertmanager,
    fake_slack: FakeSlack,
    fake_twilio: FakeTwilio,
    fake_sendgrid: FakeSendGrid,
) -> AsyncIterator[Stack]:
    async with stack(fake_slack, fake_twilio, fake_sendgrid, alertmanager) as s:
        with alertmanager.log_on_failure():
            yield s


@pytest.fixture
async def offline(
    fake_slack: FakeSlack, fake_twilio: FakeTwilio, fake_sendgrid: FakeSendGrid
) -> AsyncIterator[Stack]:
    """No Alertmanager: for requests refused before the store is asked anything."""
    async with stack(fake_slack, fake_twilio, fake_sendgrid, None) as s:
        yield s


@dataclasses.dataclass(frozen=True)
class Paged:
    group: AlertGroup
    message: dict[str, Any]  # the Slack message, with its buttons
    started: datetime


async def paged(s: Stack, labels: dict[str, str]) -> Paged:
    """The alert fires in Alertmanager and the router pages it."""
    assert s.am is not None
    started = s.clock() - timedelta(minutes=1)
    await post_alert(s.session, s.am, labels, startsAt=started)
    answer = await s.page(labels, started)
    slack = [n for n in answer["notifications"] if n["channel"] == "slack"]
    assert [n["outcome"] for n in slack] == ["delivered"], answer
    group = am_source.parse(webhook(labels, started, s.am_url))
    # Found by the name the message shows (a Sentry issue without an id is "Sentry issue").
    return Paged(group, s.message(display_name(group.alerts[0])), started)


def refusals(s: Stack, reason: str) -> float:
    labels = {"channel": "slack", "reason": reason}
    return metric(s.service, "oncall_router_acknowledgements_refused_total", labels)


def acknowledgements(s: Stack) -> float:
    return metric(s.service, "oncall_router_acknowledgements_total", {"channel": "slack"})


def context_lines(update: dict[str, Any]) -> list[str]:
    """The message's context lines; what a click did is the last (labels, links and who was
    paged come before it)."""
    return [
        e["text"] for b in update.get("blocks", []) if b["type"] == "context" for e in b["elements"]
    ]


async def test_acknowledge_records_a_marker_and_updates_the_message(
    live: Stack, caplog: pytest.LogCaptureFixture
) -> None:
    """Acknowledge: an empty 200, a marker silence in Alertmanager, the message names who and
    when and loses its buttons; a second click changes nothing; no secret reaches a log."""
    caplog.set_level(logging.DEBUG)
    page = await paged(live, DISK_FULL)
    gid = live.service.group_id(page.group)
    assert find_button(page.message, "ack")[0] == f"ack:{sms_code(gid)}"
    assert find_button(page.message, "silence")[1]["text"]["text"] == "Silence 1h"
    with pytest.raises(LookupError):
        find_button(page.message, "resolve")  # a Prometheus alert

    assert await live.click(page.message, "ack") == (200, "")

    [marker] = await live.silences()
    matchers = {m["name"]: m["value"] for m in marker["matchers"]}
    assert matchers[ACK_LABEL] == gid
    assert marker["createdBy"] == "alice"
    [update] = live.slack.responses()
    assert update["replace_original"] is True
    *_, line = context_lines(update)
    assert line.startswith(f":white_check_mark: Acknowledged by <@{ALICE}> at ")
    assert "escalation paused until" in line
    assert not [b for b in update["blocks"] if b["type"] == "actions"]
    assert update["blocks"][:2] == page.message["blocks"][:2]  # header and facts kept
    assert update["attachments"][0]["blocks"] == page.message["attachments"][0]["blocks"]
    assert acknowledgements(live) == 1

    # Another copy of the message, clicked by someone else: harmless.
    assert await live.click(page.message, "ack", user=STRANGER) == (200, "")
    assert len(await live.silences()) == 1
    assert acknowledgements(live) == 1
    *_, line = context_lines(live.slack.responses()[-1])
    assert line.startswith(f":white_check_mark: Already acknowledged by <@{ALICE}> at ")

    token = find_button(page.message, "ack")[1]["value"]
    url_secrets = [c["response_url"].rsplit("/", 1)[1] for c in live.clicks]
    unredacted = JsonFormatter(Redactor())
    logged = "\n".join(unredacted.format(r) for r in caplog.records)
    assert '"msg": "acknowledged"' in logged
    for secret in [token, token.rpartition(".")[2], SIGNING_SECRET, ACK_SECRET, *url_secrets]:
        assert secret not in logged


async def test_someone_not_in_the_routing_file_acknowledges_by_slack_name(live: Stack) -> None:
    """A workspace member without a `slack:` id in routing.yaml is recorded by Slack name."""
    page = await paged(live, DISK_FULL)

    assert await live.click(page.message, "ack", user=STRANGER) == (200, "")

    [marker] = await live.silences()
    assert marker["createdBy"] == "slack:stranger"
    *_, line = context_lines(live.slack.responses()[-1])
    assert line.startswith(f":white_check_mark: Acknowledged by <@{STRANGER}> at ")


async def test_acknowledged_group_pages_nobody_new_until_it_expires(live: Stack) -> None:
    """After Acknowledge, a re-send past the secondary's step pages nobody; once the
    acknowledgement has run out (30 min for critical), the next re-send escalates."""
    page = await paged(live, DISK_FULL)
    first = {r.form()["To"] for r in live.pages()}
    assert first  # the primary was texted and called
    assert await live.click(page.message, "ack") == (200, "")
    sent = (len(live.pages()), len(live.slack.requests_to("/api/")))

    live.clock.offset = timedelta(minutes=16)  # past the 15-minute step to the secondary
    answer = await live.page(DISK_FULL, page.started)
    delivered = {n["channel"] for n in answer["notifications"] if n["outcome"] == "delivered"}
    assert delivered <= {"slack"}, answer  # nobody paged; the channel hears of the ack
    assert len(live.pages()) == sent[0]

    live.clock.offset = timedelta(minutes=50)  # the acknowledgement ran out 20 minutes ago
    await live.page(DISK_FULL, page.started)
    later = {r.form()["To"] for r in live.pages()[sent[0] :]}
    assert later - first, "escalation did not resume once the acknowledgement expired"


async def test_bad_or_stale_signature_is_401(live: Stack) -> None:
    """A wrong secret, a timestamp over 5 minutes old or no signature: 401, nothing done."""
    page = await paged(live, DISK_FULL)
    wrong = await live.slack.click(
        live.actions_url, page.message, "ack", user_id=ALICE, signing_secret="not-the-secret"
    )
    stale = await live.slack.click(
        live.actions_url,
        page.message,
        "ack",
        user_id=ALICE,
        signing_secret=SIGNING_SECRET,
        timestamp=live.clock.ts() - 301,
    )
    body = urlencode({"payload": "{}"})
    async with live.session.post(
        live.actions_url,
        data=body,
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    ) as response:
        missing = (response.status, await response.json())
    assert (wrong.status, stale.status, missing[0]) == (401, 401, 401)
    assert missing[1]["error"] == "unauthorized"
    assert await live.silences() == []
    assert live.slack.responses() == []
    assert not live.service.tasks
    assert refusals(live, "badSignature") == 3
    assert acknowledgements(live) == 0


async def test_forged_token_is_refused(live: Stack) -> None:
    """A button value altered by hand does not verify: refused, told to the clicker only."""
    page = await paged(live, DISK_FULL)
    token = find_button(page.message, "ack")[1]["value"]
    forged = ("A" if token[0] != "A" else "B") + token[1:]  # the signed part changed

    assert await live.click(page.message, "ack", value=forged) == (200, "")
    assert await live.click(page.message, "silence", value=forged) == (200, "")

    assert await live.silences() == []
    ack, silence = live.slack.responses()
    assert ack == {
        "response_type": "ephemeral",
        "replace_original": False,
        "text": "Not acknowledged: the token's signature is wrong.",
    }
    assert silence["text"] == "Not silenced: the token's signature is wrong."
    assert refusals(live, "forged") == 2
    assert acknowledgements(live) == 0


async def test_expired_token_is_refused(live: Stack) -> None:
    """A button pressed after links_valid_for (12 h) acknowledges nothing."""
    page = await paged(live, DISK_FULL)
    live.clock.offset = timedelta(hours=12, minutes=1)

    assert await live.click(page.message, "ack") == (200, "")

    assert await live.silences() == []
    [update] = live.slack.responses()
    assert update["response_type"] == "ephemeral"
    assert update["text"] == "Not acknowledged: this acknowledgement link has expired."
    assert refusals(live, "expired") == 1


async def test_silence_creates_a_real_silence_of_the_group(live: Stack) -> None:
    """Silence: an Alertmanager silence on the group labels for silence_for (1 h), by the
    person, saying where it came from; the message says so, resolved notice caveat included."""
    page = await paged(live, DISK_FULL)
    before = live.clock()

    assert await live.click(page.message, "silence") == (200, "")

    after = live.clock()
    [silence] = await live.silences()
    assert sorted(silence["matchers"], key=lambda m: m["name"]) == [
        {"name": "alertname", "value": "DiskFull", "isRegex": False, "isEqual": True},
        {"name": "service", "value": "db", "isRegex": False, "isEqual": True},
    ]
    ends = datetime.fromisoformat(silence["endsAt"])
    hour = timedelta(hours=1)
    assert before + hour - timedelta(seconds=1) <= ends <= after + hour + timedelta(seconds=1)
    assert silence["createdBy"] == "alice"
    assert "oncall-router" in silence["comment"]
    assert ALICE in silence["comment"]
    [update] = live.slack.responses()
    *_, line = context_lines(update)
    assert line.startswith(f":no_bell: Silenced for 1h by <@{ALICE}> at ")
    assert "resolved notice will not be posted" in line
    assert acknowledgements(live) == 0  # a silence is not an acknowledgement

    # The group is muted now, so there is nothing left to silence.
    assert await live.click(page.message, "silence") == (200, "")
    assert live.slack.responses()[-1]["text"].startswith("Not silenced: no firing")
    assert len(await live.silences()) == 1


async def test_resolve_ends_a_sentry_alert(live: Stack) -> None:
    """Resolve on a forwarded Sentry event ends it in Alertmanager."""
    page = await paged(live, SENTRY_ISSUE)
    assert [a["labels"]["alertname"] for a in await live.alerts("SentryIssue")] == ["SentryIssue"]

    assert await live.click(page.message, "resolve") == (200, "")

    assert await live.alerts("SentryIssue") == []
    [update] = live.slack.responses()
    *_, line = context_lines(update)
    assert line.startswith(f":white_check_mark: Resolved by <@{ALICE}> at ")
    assert await live.silences() == []


async def test_resolve_is_refused_for_a_prometheus_alert(live: Stack) -> None:
    """A Prometheus alert resolves when its condition clears, whatever the payload asks."""
    page = await paged(live, DISK_FULL)
    message = json_copy(page.message)
    [block] = actions_of(message)
    block["elements"][0]["action_id"] = "resolve"  # a hand-made resolve button

    assert await live.click(message, "resolve") == (200, "")

    assert [a["labels"]["alertname"] for a in await live.alerts("DiskFull")] == ["DiskFull"]
    assert live.slack.responses()[-1]["text"].startswith("Not resolved: only Sentry events")


def json_copy(value: dict[str, Any]) -> dict[str, Any]:
    copied: dict[str, Any] = json.loads(json.dumps(value))
    return copied


def signed_token(gid: str = "0123456789abcdef") -> str:
    """A valid Slack button token for a group, signed with the stack's ACK_SECRET."""
    token = AckToken(
        group=gid,
        level=0,
        severity=Severity.CRITICAL,
        started=int(datetime.now(UTC).timestamp()) - 60,
        expires=int(datetime.now(UTC).timestamp()) + 3600,
        to="incidents",
        channel=Channel.SLACK,
    )
    return tokens.sign(token, ACK_SECRET)


async def test_store_unreachable_is_refused_politely(offline: Stack) -> None:
    """Alertmanager down: the clicker is told to try again, and Slack still gets its 200."""
    _, message = slack_message()

    for action in ("ack", "silence"):
        assert await offline.click(message, action, value=signed_token()) == (200, "")

    ack, silence = offline.slack.responses()
    assert ack["text"] == "Not acknowledged: Alertmanager is unreachable; try again."
    assert silence["text"] == "Not silenced: Alertmanager is unreachable; try again."
    assert refusals(offline, "storeUnavailable") == 2


def form(payload: Any) -> bytes:
    return urlencode({"payload": json.dumps(payload)}).encode()


def block_actions(**changes: Any) -> dict[str, Any]:
    """A well-formed payload for the Acknowledge button, with some fields changed."""
    payload: dict[str, Any] = {
        "type": "block_actions",
        "user": {"id": ALICE, "username": "alice.archer", "name": "alice.archer"},
        "response_url": "http://127.0.0.1:9/actions/T1/1/x",
        "message": {"blocks": []},
        "actions": [{"action_id": "ack", "block_id": "ack:x", "value": "x.y", "type": "button"}],
    }
    payload.update(changes)
    return payload


def signed(stack: Stack, body: bytes) -> dict[str, str]:
    """Headers of a form Slack posts, signed now (by the stack's clock)."""
    ts = str(stack.clock.ts())
    return {
        "Content-Type": "application/x-www-form-urlencoded",
        "X-Slack-Request-Timestamp": ts,
        "X-Slack-Signature": slack_signature(SIGNING_SECRET, ts, body),
    }


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b"", id="empty"),
        pytest.param(b"\xff\xfe", id="not-utf8"),
        pytest.param(b"text=hello", id="no-payload"),
        pytest.param(form({}) + b"&" + form({}), id="two-payloads"),
        pytest.param(b"payload=%7Bnot+json", id="not-json"),
        pytest.param(b"payload=" + b"%5B" * 100_000, id="deep-json"),
        pytest.param(form([1, 2]), id="json-list"),
        pytest.param(form(block_actions(type="view_submission")), id="wrong-type"),
        pytest.param(form(block_actions(actions=[])), id="no-action"),
        pytest.param(form(block_actions(actions=["ack"])), id="action-not-object"),
        pytest.param(
            form(block_actions(actions=[{"action_id": "delete", "value": "x"}])), id="unknown"
        ),
        pytest.param(form(block_actions(actions=[{"action_id": "ack"}])), id="no-value"),
        pytest.param(
            form(block_actions(actions=[{"action_id": [], "value": "x.y"}])),
            id="action-id-not-text",  # found by tests/test_fuzz_callbacks.py: was a 500
        ),
        pytest.param(form(block_actions(user=None)), id="no-user"),
        pytest.param(form(block_actions(user={"id": 7})), id="user-id-not-text"),
        pytest.param(form(block_actions(response_url=None)), id="no-response-url"),
        pytest.param(form(block_actions(response_url="file:///etc/passwd")), id="not-http"),
        pytest.param(
            form(block_actions(response_url="https://attacker.example/hooks")), id="not-slack"
        ),
    ],
)
async def test_malformed_signed_payloads_are_400(offline: Stack, body: bytes) -> None:
    """Whatever a signed request holds, a payload we cannot use is a 400, never a 500."""
    headers = signed(offline, body)
    async with offline.session.post(offline.actions_url, data=body, headers=headers) as response:
        assert response.status == 400, await response.text()
        assert (await response.json())["error"] == "invalid_payload"
    assert refusals(offline, "malformed") == 1
    assert offline.slack.responses() == []


async def test_signed_well_formed_payload_is_accepted(offline: Stack) -> None:
    """The counterpart of the 400s: the same shape, unchanged, is read (and refused politely
    for its made-up token), so those tests fail for the field they change."""
    body = form(block_actions(response_url=offline.slack.response_url()))
    headers = signed(offline, body)
    async with offline.session.post(offline.actions_url, data=body, headers=headers) as response:
        assert response.status == 200
    async with asyncio.timeout(10):
        while offline.service.tasks:
            await asyncio.wait(set(offline.service.tasks))
    [update] = offline.slack.responses()
    assert update["text"] == "Not acknowledged: not an acknowledgement token."
    assert refusals(offline, "malformed") == 1


async def test_not_configured_is_404(
    fake_slack: FakeSlack, fake_twilio: FakeTwilio, fake_sendgrid: FakeSendGrid
) -> None:
    """Without SLACK_SIGNING_SECRET nobody can press anything."""
    _, message = slack_message()
    async with stack(fake_slack, fake_twilio, fake_sendgrid, None, slack_signing_secret=None) as s:
        clicked = await fake_slack.click(
            s.actions_url, message, "ack", user_id=ALICE, signing_secret=SIGNING_SECRET
        )
        assert clicked.status == 404
        assert fake_slack.responses() == []


# -- the fake's own behaviour -----------------------------------------------------------------


async def test_fake_response_url_answers_like_slack(
    fake_slack: FakeSlack, session: aiohttp.ClientSession
) -> None:
    """ok for a valid update; Slack's webhook errors for a broken one; everything recorded."""
    url = fake_slack.response_url()
    valid = {"replace_original": True, "text": "done", "blocks": [{"type": "divider"}]}
    cases: list[tuple[Any, tuple[int, str]]] = [
        (valid, (200, "ok")),
        ({"response_type": "ephemeral", "text": "nope"}, (200, "ok")),
        ({"replace_original": "true", "text": "x"}, (400, "invalid_payload")),
        ({"response_type": "shout", "text": "x"}, (400, "invalid_payload")),
        ({"text": "x", "blocks": [{"type": "header"}]}, (400, "invalid_blocks")),
        ({"replace_original": True}, (400, "no_text")),
    ]
    for body, expected in cases:
        async with session.post(url, json=body) as response:
            assert (response.status, await response.text()) == expected, body
    async with session.post(url, data=b"{not json", headers={"Content-Type": "application/json"}):
        pass
    assert len(fake_slack.requests_to("/actions/")) == len(cases) + 1
    assert fake_slack.responses()[0] == valid


async def test_fake_click_posts_what_slack_posts(fake_slack: FakeSlack) -> None:
    """A form with one payload field, signed over the raw body, with Slack's fields."""
    seen: list[tuple[dict[str, str], bytes]] = []

    async def app_endpoint(request: web.Request) -> web.Response:
        seen.append((dict(request.headers), await request.read()))
        return web.Response()

    app = web.Application()
    app.router.add_post("/slack", app_endpoint)
    _, message = slack_message()
    async with TestServer(app, host="127.0.0.1") as server:
        clicked = await fake_slack.click(
            str(server.make_url("/slack")),
            message,
            "silence",
            user_id=ALICE,
            signing_secret=SIGNING_SECRET,
            timestamp=1_700_000_000,
        )
    assert (clicked.status, clicked.body) == (200, "")
    [(headers, body)] = seen
    assert headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert headers["X-Slack-Request-Timestamp"] == "1700000000"
    assert auth.slack_signature_ok(
        body, "1700000000", headers["X-Slack-Signature"], SIGNING_SECRET, 1_700_000_000
    )
    [(name, raw)] = parse_qsl(body.decode())
    payload = json.loads(raw)
    assert name == "payload"
    assert payload == clicked.payload
    assert payload["type"] == "block_actions"
    assert payload["user"]["id"] == ALICE
    assert set(payload) >= {
        "api_app_id",
        "token",
        "container",
        "trigger_id",
        "team",
        "channel",
        "message",
        "response_url",
        "actions",
    }
    assert payload["message"]["blocks"] == message["blocks"]
    assert payload["response_url"].startswith(fake_slack.url + "/actions/")
    [action] = payload["actions"]
    block_id, button = find_button(message, "silence")
    assert action["block_id"] == block_id
    assert action["value"] == button["value"]
    assert (action["type"], action["action_id"], action["style"]) == ("button", "silence", "danger")


def test_fake_checks_confirmation_dialogs() -> None:
    """A button's confirm dialog is held to Block Kit's limits, as Slack does."""
    _, message = slack_message(labels={"source": "sentry"})
    assert block_kit_error(message["blocks"]) is None
    broken = json_copy(message)
    [block] = actions_of(broken)
    block["elements"][1]["confirm"]["confirm"]["text"] = "x" * 31
    assert block_kit_error(broken["blocks"]) == "invalid_blocks"


def test_response_url_must_be_slacks() -> None:
    service, _ = dry_run_router(settings=Settings(slack_api_url="http://127.0.0.1:8080/api"))
    assert _slack_origin(service, "https://hooks.slack.com/actions/T1/2/x")
    assert _slack_origin(service, "http://127.0.0.1:8080/actions/T1/2/x")  # SLACK_API_URL's host
    for url in (
        "http://hooks.slack.com/actions/T1/2/x",  # not https
        "https://hooks.slack.com.attacker.example/actions",
        "https://attacker.example/?u=https://hooks.slack.com/",
        "http://127.0.0.1:8081/actions/T1/2/x",
        "/actions/T1/2/x",
        "http://[::1",
    ):
        assert not _slack_origin(service, url), url
