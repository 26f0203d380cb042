"""The `people`, `groups` and `slack` sections: who and where can be paged."""

from __future__ import annotations

import re
from collections.abc import Mapping

from receiver.config.types import Person, SlackDestination
from receiver.config.yaml_file import LineDict
from receiver.config.yaml_source import Reader

_E164 = re.compile(r"^\+[1-9]\d{6,14}$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def parse_people(r: Reader, top: LineDict) -> dict[str, Person]:
    out: dict[str, Person] = {}
    for pid, line, path, value in r.entries(top, "people", "people"):
        r.check_name(line, path, pid)
        m = r.mapping(value, line, path, ("name", "phone", "email", "slack"))
        if m is None:
            continue
        phone = r.string(m, "phone", path)
        if phone is not None and phone and not _E164.fullmatch(phone):
            r.error(
                r.line_of(m, "phone"),
                f"{path}.phone",
                f"{phone!r} is not an E.164 phone number (e.g. +447700900123)",
            )
        email = r.string(m, "email", path)
        if email is not None and email and not _EMAIL.fullmatch(email):
            r.error(r.line_of(m, "email"), f"{path}.email", f"{email!r} is not an email address")
        out[pid] = Person(
            pid,
            r.string(m, "name", path) or pid,
            phone or None,
            email or None,
            r.string(m, "slack", path) or None,
        )
    return out


def parse_groups(
    r: Reader, top: LineDict, people: Mapping[str, Person]
) -> dict[str, tuple[str, ...]]:
    out = {}
    table = r.section(top, "groups", "groups")
    for name in table:
        line, path = r.line_of(table, name), f"groups.{name}"
        r.check_name(line, path, name)
        members = r.members(table, name, "groups", people)
        if not members:
            r.error(line, path, "a group needs at least one member")
        out[name] = members
    return out


def parse_slack(r: Reader, top: LineDict) -> dict[str, SlackDestination]:
    out = {}
    for name, line, path, value in r.entries(top, "slack", "slack"):
        r.check_name(line, path, name)
        m = r.mapping(value, line, path, ("channel", "webhook_url", "webhook_url_file"))
        if m is None:
            continue
        channel = r.string(m, "channel", path)
        has_webhook = "webhook_url" in m or "webhook_url_file" in m
        url = r.secret(m, "webhook_url", path) if has_webhook else None
        if channel is None and not has_webhook:
            r.error(m.line, path, "give channel (Web API) or webhook_url / webhook_url_file")
        elif channel is not None and has_webhook:
            r.error(m.line, path, "give channel or a webhook, not both")
        if url and not url.startswith(("https://", "http://")):
            # Never echo the value: a webhook URL is a secret.
            r.error(r.line_of(m, "webhook_url"), f"{path}.webhook_url", "not an http(s) URL")
        out[name] = SlackDestination(name, channel, url or None)
    return out
