"""`oncall-router test-page`: prove each channel a person, rotation or group is paged on works.

Handoff procedures ask the incoming on-call to send themselves a test page. This finds every
channel the routing file would page the target on (any route, any escalation step), and sends a
clearly marked test message through each, with the same senders and delivery policy as `serve`,
so a wrong phone number, a missing secret or a vendor rejection shows up now rather than at 3 a.m.
"""

from __future__ import annotations

import argparse
import asyncio
import difflib
import logging
import os
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from typing import Literal

import aiohttp
from prometheus_client import CollectorRegistry

from receiver.channels.registry import vendor_senders
from receiver.cli.commands import ConfigArg
from receiver.cli.tools import UsageError, parse_time, pick_team
from receiver.config.load import load_config
from receiver.config.settings import Settings, load_settings
from receiver.config.types import CONTACT_FIELD, Config, Target
from receiver.delivery.fanout import Deliverer, Outcome
from receiver.messages import templates
from receiver.metrics import Metrics
from receiver.model import (
    Alert,
    AlertGroup,
    Channel,
    Notification,
    Recipient,
    Severity,
    Source,
    Status,
)
from receiver.routing.oncall import on_call
from receiver.web.logs import Redactor, setup_logging

# The file name is the command's ("test-page"); tell pytest this module holds no tests.
__test__ = False

Kind = Literal["person", "rotation", "group"]
KINDS: tuple[Kind, ...] = ("person", "rotation", "group")
ROUTE = "test-page"
# Each channel's text comes from an annotation of the synthetic alert, so names from the routing
# file are data to the (sandboxed) template engine, never template source.
_TEMPLATES = {
    "sms": "{{ alerts[0].annotations.test_sms }}",
    "call": "{{ alerts[0].annotations.test_call }}",
    "email_subject": "{{ alerts[0].annotations.test_email_subject }}",
    "email_text": "{{ alerts[0].annotations.test_email_text }}",
    "slack": "{{ alerts[0].annotations.test_slack }}",
}


def register(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], add_config: ConfigArg
) -> None:
    parser = sub.add_parser(
        "test-page",
        help="send a marked test page through every channel a person/rotation/group is paged on",
        description=(
            "Sends 'TEST PAGE - no action needed' through each channel the routing file pages "
            "the target on, with the vendor credentials from the environment, and reports each "
            "delivery. Exits 1 if any test page could not be delivered."
        ),
    )
    add_config(parser)
    parser.add_argument(
        "--to",
        required=True,
        metavar="TARGET",
        help="a person, rotation or group: alice, person:alice, rotation:primary, group:cto",
    )
    parser.add_argument(
        "--at", help="ISO 8601 time: whose turn a rotation is (default: now, e.g. at handoff)"
    )
    parser.add_argument(
        "--dry-run", action="store_true", help="print each test page instead of sending it"
    )
    parser.add_argument(
        "--team",
        help="the team whose rotations, groups and routes count (default: the default team)",
    )
    parser.set_defaults(func=run)


@dataclass(frozen=True)
class Who:
    """The resolved `--to`: what it names and the people it means at `--at`."""

    kind: Kind
    name: str
    people: tuple[str, ...]

    def __str__(self) -> str:
        return f"{self.kind} {self.name}"


@dataclass(frozen=True)
class PageToSend:
    channel: Channel
    person: str
    address: str | None  # None: the routing file has no address for this channel
    via: tuple[str, ...]  # where the routing file pages the target on this channel
    notification: Notification | None


@dataclass(frozen=True)
class Sent:
    page: PageToSend
    ok: bool
    status: str  # "delivered", "would send", or why not


def run(args: argparse.Namespace) -> int:
    config = load_config(args.config, os.environ)
    if args.team is not None:
        config = pick_team(config, args.team)
    at = parse_time(args.at, config.timezone)
    who = resolve(config, args.to, at)
    pages = build_pages(config, who, datetime.now(UTC), at)
    if not pages:
        print(f"Nothing in {args.config} pages {who}: no channel to test.")
        return 1
    if args.dry_run:
        results = [
            Sent(p, p.notification is not None, "would send" if p.notification else _no_address(p))
            for p in pages
        ]
    else:
        settings = load_settings(os.environ)
        _quiet_logs(settings, config)
        results = asyncio.run(send(config, settings, pages))
    print(report(config, who, at, results, dry_run=args.dry_run))
    return 0 if all(r.ok for r in results) else 1


def _quiet_logs(settings: Settings, config: Config) -> None:
    """The report on stdout is this command's output; the Deliverer's log lines would repeat it
    on stderr (through logging's last-resort handler, unredacted). Unless LOG_LEVEL asks for
    them, keep only errors, as redacted JSON like `serve`. Leave logging alone when the caller
    (a test runner, an embedding program) has configured it."""
    if logging.getLogger().handlers:
        return
    level = settings.log_level if os.environ.get("LOG_LEVEL") else "error"
    setup_logging(level, Redactor(settings.secrets | config.secrets))


def resolve(config: Config, text: str, at: datetime) -> Who:
    """`person:x`, `rotation:x`, `group:x`, or a bare name that only one of them has."""
    tables: Mapping[Kind, Mapping[str, object]] = {
        "person": config.people,
        "rotation": config.rotations,
        "group": config.groups,
    }
    prefix, sep, rest = text.strip().partition(":")
    if sep:
        if prefix not in KINDS:
            raise UsageError(
                f"--to {text!r}: write person:NAME, rotation:NAME, group:NAME or a bare name"
            )
        kind: Kind = prefix  # narrowed by the check against KINDS above
        name = rest.strip()
        if name not in tables[kind]:
            raise UsageError(f"--to {text!r}: unknown {kind}{_known(name, tables[kind])}")
        return _who(config, kind, name, at)
    name = prefix
    found = [k for k in KINDS if name in tables[k]]
    if len(found) > 1:
        spelled = " or ".join(f"{k}:{name}" for k in found)
        raise UsageError(
            f"--to {name!r} is ambiguous: it names a {' and a '.join(found)}; write {spelled}"
        )
    if not found:
        everything = {n: None for table in tables.values() for n in table}
        raise UsageError(
            f"--to {name!r}: no person, rotation or group of that name{_known(name, everything)}"
        )
    return _who(config, found[0], name, at)


def _known(name: str, table: Mapping[str, object]) -> str:
    close = difflib.get_close_matches(name, list(table), n=1)
    if close:
        return f" (did you mean {close[0]!r}?)"
    return f" (known: {', '.join(sorted(table))})" if table else ""


def _who(config: Config, kind: Kind, name: str, at: datetime) -> Who:
    if kind == "person":
        return Who(kind, name, (name,))
    if kind == "rotation":
        return Who(kind, name, (on_call(config, name, at),))
    return Who(kind, name, tuple(config.groups[name]))


def reaches(config: Config, target: Target, who: Who) -> bool:
    """Whether a route target pages `who`: exactly its rotation or group, or, for a person,
    any target that can name them (their own, a group they are in, a rotation they take
    turns in, whoever holds it today)."""
    if who.kind != "person":
        return target.ref_kind == who.kind and target.ref == who.name
    if target.ref_kind == "person":
        return target.ref == who.name
    if target.ref_kind == "group":
        return who.name in config.groups[target.ref]
    if target.ref_kind == "rotation":
        return who.name in config.rotations[target.ref].members
    return False  # a Slack channel is shared, not a way to reach one person


def channels(config: Config, who: Who) -> dict[Channel, tuple[str, ...]]:
    """Each channel `who` is paged on, with where: `critical +0m`, `high +1h`, in file order."""
    found: dict[Channel, list[str]] = {}
    for route in config.routes:
        for level in range(len(route.escalation) + 1):
            for target in route.level_targets(level):
                if reaches(config, target, who):
                    where = f"{route.name} {_age(route.level_after(level))}"
                    uses = found.setdefault(target.kind, [])
                    if where not in uses:
                        uses.append(where)
    return {c: tuple(found[c]) for c in Channel if c in found}


def _age(seconds: float) -> str:
    hours, rest = divmod(int(seconds), 3600)
    minutes = rest // 60
    return "+" + ((f"{hours}h" if hours else "") + (f"{minutes}m" if minutes else "") or "0m")


def build_pages(config: Config, who: Who, now: datetime, at: datetime) -> list[PageToSend]:
    pages = []
    for channel, via in channels(config, who).items():
        for pid in who.people:
            address = config.people[pid].address(channel)
            n = _notification(config, who, channel, pid, address, now) if address else None
            pages.append(PageToSend(channel, pid, address, via, n))
    return pages


def _notification(
    config: Config, who: Who, channel: Channel, pid: str, address: str, now: datetime
) -> Notification:
    tz = config.timezone
    person = config.people[pid].name
    when = f"{now.astimezone(tz):%H:%M %Z}"
    what = {
        Channel.SMS: "SMS",
        Channel.CALL: "phone call",
        Channel.EMAIL: "email",
        Channel.SLACK: "Slack",
    }[channel]
    banner = "TEST PAGE — no action needed"
    annotations = {
        "summary": f"{banner}: oncall-router {what} test for {who}",
        # GSM-7 only (no em dash): one 160-character segment, as real pages are.
        "test_sms": (
            f"TEST PAGE - no action needed. oncall-router SMS test for {who} ({pid}) "
            f"at {when}. If you read this, SMS paging reaches you."
        ),
        "test_call": (
            f"This is a test page from oncall router, no action needed. "
            f"If you hear this, phone call paging reaches {person}."
        ),
        "test_email_subject": f"{banner} (oncall-router email test for {who})",
        "test_email_text": (
            f"{banner}.\n\n"
            f"This is a test page from oncall-router to {person} ({pid}) at {when}, sent "
            f"because {who} is paged by email in the routing file. If you read this, email "
            f"paging reaches you. Nothing is wrong."
        ),
        "test_slack": f"{banner}. oncall-router Slack test for {who} ({pid}) at {when}.",
    }
    alert = Alert(
        source=Source.ALERTMANAGER,
        status=Status.FIRING,
        labels={"alertname": "TEST PAGE", "test_page": "true"},
        annotations=annotations,
        starts_at=now,
        fingerprint=uuid.uuid4().hex[:16],
    )
    # A fresh key per page: a test page is never "already delivered".
    key = f"test-page-{uuid.uuid4().hex}"
    group = AlertGroup(Source.ALERTMANAGER, key, Status.FIRING, (alert,))
    return Notification(
        key=key,
        channel=channel,
        recipient=Recipient(pid, address),
        # Low: the calmest styling (blue, not a siren) for a message that needs no action.
        severity=Severity.LOW,
        route=ROUTE,
        group=group,
        alerts=(alert,),
        templates=_TEMPLATES,
    )


async def send(
    config: Config,
    settings: Settings,
    pages: Sequence[PageToSend],
    session: aiohttp.ClientSession | None = None,
) -> list[Sent]:
    """Deliver every page at once through the vendor senders, under the routing file's policy."""
    redact = Redactor(settings.secrets | config.secrets)
    wanted = [p.notification for p in pages if p.notification is not None]
    own = session is None
    session = session or aiohttp.ClientSession()
    try:
        deliverer = Deliverer(
            vendor_senders(session, settings, config),
            Metrics(CollectorRegistry()),
            # Its own fresh store: a test page is sent however recently the same one was.
            config.delivery,
        )
        report = await deliverer.deliver(wanted)
    finally:
        if own:
            await session.close()
    by_key = {r.notification.key: r for r in report.results}
    out = []
    for page in pages:
        if page.notification is None:
            out.append(Sent(page, False, _no_address(page)))
            continue
        result = by_key[page.notification.key]
        if result.outcome is Outcome.DELIVERED:
            out.append(Sent(page, True, "delivered"))
            continue
        why = f"{result.reason}: {result.detail}" if result.detail else result.reason
        if result.outcome is Outcome.RETRY:
            why += f" (still failing after {result.attempts} attempt(s))"
        # Senders already keep secrets out of details; redact again, since this is printed.
        out.append(Sent(page, False, f"FAILED {redact(why)}"))
    return out


def _no_address(page: PageToSend) -> str:
    return f"NOT SENT: {page.person} has no {CONTACT_FIELD[page.channel]} in the routing file"


def report(
    config: Config, who: Who, at: datetime, results: Sequence[Sent], *, dry_run: bool
) -> str:
    tz = config.timezone
    lines = [f"Test page to {who}: {_people(config, who, at, tz)}"]
    if dry_run:
        lines.append("Dry run: nothing is sent.")
    width = max(len(_person(config, r.page.person)) for r in results)
    address_width = max(len(r.page.address or "-") for r in results)
    channel: Channel | None = None
    for r in results:
        page = r.page
        if page.channel is not channel:
            channel = page.channel
            lines.append("")
            lines.append(f"{channel.value} (paged by {', '.join(page.via)})")
        who_text = _person(config, page.person)
        address = page.address or "-"
        lines.append(f"  {who_text:<{width}}  {address:<{address_width}}  {r.status}")
        if dry_run and page.notification is not None:
            text = templates.text_for(page.channel, page.notification, tz)
            lines.extend(f"    | {line}".rstrip() for line in text.splitlines())
    failed = sum(1 for r in results if not r.ok)
    lines.append("")
    if dry_run:
        lines.append(f"{len(results) - failed} test page(s) would be sent, {failed} could not.")
    elif failed:
        lines.append(f"{failed} of {len(results)} test page(s) FAILED.")
    else:
        lines.append(f"All {len(results)} test page(s) delivered.")
    return "\n".join(lines)


def _people(config: Config, who: Who, at: datetime, tz: tzinfo) -> str:
    names = ", ".join(_person(config, p) for p in who.people)
    if who.kind == "rotation":
        return f"{names}, on call at {at.astimezone(tz):%a %Y-%m-%d %H:%M %Z}"
    return names


def _person(config: Config, pid: str) -> str:
    person = config.people[pid]
    return pid if person.name == pid else f"{pid} ({person.name})"
