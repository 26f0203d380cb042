"""One view of a group for every channel: the team's severity word, who was paged and what comes
next (routing.paging), the compact label list, the links, the SMS's one link, the template names
and the email thread."""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from zoneinfo import ZoneInfo

import pytest

from receiver.channels.sendgrid import thread_headers
from receiver.config.load import load_config
from receiver.messages import links, render, templates, view
from receiver.model import Ack, AckRef, Channel, GroupMemory, Notification, Status
from receiver.routing.plan import plan, spell_of
from receiver.sources import alertmanager
from tests.helpers import NOW, ROUTING, fixture, shipped_config

CONFIG = shipped_config()
TZ = CONFIG.timezone


def critical(
    labels: dict[str, str] | None = None,
    annotations: dict[str, str] | None = None,
    channel: Channel = Channel.SMS,
    *,
    memory: GroupMemory | None = None,
    acks: tuple[Ack, ...] = (),
) -> Notification:
    """The critical fixture's first message on `channel`, planned at NOW."""
    payload = fixture("alertmanager-firing-critical.json")
    for alert in payload["alerts"]:
        alert["labels"].update(labels or {})
        alert["annotations"].update(annotations or {})
    group = alertmanager.parse(payload)
    notifications = plan(CONFIG, group, NOW, acks, memory).notifications
    return next(n for n in notifications if n.channel is channel)


def spell() -> str:
    group = alertmanager.parse(fixture("alertmanager-firing-critical.json"))
    return min(a.starts_at for a in group.alerts).isoformat()


@pytest.mark.parametrize(
    ("labels", "word", "text"),
    [
        ({"severity": "P0"}, "P0", "critical · P0"),
        ({"severity": "sev 1"}, "sev 1", "critical · sev 1"),  # as the alert wrote it
        ({"severity": "critical"}, "", "critical"),  # the canonical name is no extra word
        (
            {"severity": "", "priority": "P1 - Critical"},
            "P1 - Critical",
            "critical · P1 - Critical",
        ),
        # A rule decided, not the word: the word would contradict the severity.
        ({"alertname": "KubeAPIDown", "severity": "P3"}, "", "critical"),
    ],
)
def test_the_teams_own_word_for_the_severity(labels: dict[str, str], word: str, text: str) -> None:
    n = critical(labels)
    assert n.paging is not None
    assert n.paging.severity_word == word
    assert view.of(n, TZ).severity_text == text


def test_paged_levels_and_the_next_one() -> None:
    """Who each level reached paged (rotations as they stood then) and when the next is due."""
    n = critical()
    assert n.paging is not None
    assert [(lv.level, [p.name for p in lv.people]) for lv in n.paging.levels] == [
        (0, ["Alice Archer", "Carol Chen (tech lead)", "Erin Evans (engineering manager)"])
    ]
    following = n.paging.next
    assert following is not None
    assert (following.level, following.at) == (1, NOW + timedelta(minutes=15))
    assert [(p.name, p.channels) for p in following.people] == [
        ("Bob Baker", (Channel.SMS, Channel.CALL))
    ]
    assert render.paging_lines(view.of(n, TZ), TZ) == [
        (
            "Paged",
            "level 0: Alice Archer by SMS and call, Carol Chen (tech lead) by email, "
            "Erin Evans (engineering manager) by email",
        ),
        ("Next", "level 1 at 09:34 GMT: Bob Baker by SMS and call"),
    ]


def test_an_acknowledgement_moves_the_next_level() -> None:
    """Time under an acknowledgement does not count: the next level is due after it expires,
    with the time the level had left."""
    memory = GroupMemory(spell(), NOW - timedelta(minutes=10))
    ack = Ack("g", "alice", Channel.SMS, 0, NOW - timedelta(minutes=5), NOW + timedelta(minutes=25))
    # Nobody is paged while it holds; the Slack channel still hears of the group.
    n = critical(memory=memory, acks=(ack,), channel=Channel.SLACK)
    assert n.paging is not None
    assert n.paging.next is not None
    # 5 unacknowledged minutes of 15 were used: 10 are left once the acknowledgement expires.
    assert n.paging.next.at == ack.until + timedelta(minutes=10)


def test_no_next_level_once_resolved_or_at_the_top() -> None:
    payload = fixture("alertmanager-resolved.json")
    resolved = plan(CONFIG, alertmanager.parse(payload), NOW).notifications[0]
    assert resolved.paging is not None
    assert resolved.paging.next is None
    top = critical(memory=GroupMemory(spell(), NOW - timedelta(hours=3)))
    assert top.paging is not None
    assert [lv.level for lv in top.paging.levels] == [0, 1, 2, 3, 4]
    assert top.paging.next is None


def test_compact_labels_leave_out_what_is_shown() -> None:
    """Name, place, the severity label and values already shown are not listed again."""
    n = critical({"team": "payments", "instance": "10.0.0.1:8080"})
    v = view.of(n, TZ)
    assert v.place.text == "payments-api in prod-eu-1/payments"
    # job=payments-api: the service says so already.
    assert v.labels == (("instance", "10.0.0.1:8080"), ("team", "payments"))


def test_every_url_annotation_is_a_link_titled_by_its_key() -> None:
    n = critical(
        annotations={
            "dashboard_url": "https://grafana.example.com/d/1",
            "grafana_logs_url": "https://grafana.example.com/explore",
            "wiki": "https://wiki.example.com/payments",
            "note": "see https://wiki.example.com/payments",  # more than a URL: text
            "bad_url": "ftp://files.example.com/x",
        }
    )
    titles = [link.title for link in view.of(n, TZ).links]
    assert titles == ["Runbook", "Dashboard", "Grafana logs", "Wiki", "Source"]
    assert links.annotation_title("runbook_url") == "Runbook"


def test_a_sentry_event_back_through_alertmanager_links_to_sentry() -> None:
    n = critical({"source": "sentry", "sentry_resource": "event_alert", "level": "error"})
    v = view.of(n, TZ)
    assert [link.title for link in v.links] == ["Runbook", "Sentry issue"]
    assert v.sentry is not None
    assert v.sentry.level == "error"


@pytest.mark.parametrize(
    ("token", "annotations", "link"),
    [
        # A short acknowledgement link fits: it comes first.
        ("t.s", {}, "https://ack.example/ack/t.s"),
        # A signed token is long: the runbook instead (Reply ACK acknowledges anyway).
        ("x" * 180, {}, "https://runbooks.example.com/payments/high-error-rate"),
    ],
)
def test_the_sms_link_is_the_first_that_fits(
    token: str, annotations: dict[str, str], link: str
) -> None:
    n = dataclasses.replace(
        critical(annotations), ack=AckRef("RJXAJ", token, "https://ack.example")
    )
    text = templates.sms_text(n, TZ)
    assert f" {link} Reply ACK RJXAJ" in text


def test_without_a_runbook_the_sms_links_to_alertmanager() -> None:
    payload = fixture("alertmanager-firing-critical.json")
    for alert in payload["alerts"]:
        del alert["annotations"]["runbook_url"]
    payload["groupLabels"] = {"alertname": "HighErrorRate"}
    payload["externalURL"] = "http://am:9093"
    n = next(
        n
        for n in plan(CONFIG, alertmanager.parse(payload), NOW).notifications
        if n.channel is Channel.SMS
    )
    assert templates.sms_text(n, TZ).endswith(
        " http://am:9093/#/alerts?filter=%7Balertname%3D%22HighErrorRate%22%7D"
    )


def test_templates_can_use_the_new_names() -> None:
    """What `check` renders a route's template against, and what a page then says."""
    source = (
        "{{ title }} | {{ severity_word }} | {{ where }} | {{ service }} {{ cluster }} "
        "{{ namespace }} | {{ since }} | {{ age }} | {{ labels }} | {{ links | length }} | "
        "{{ alertmanager_url != '' }} {{ silence_url != '' }} | {{ sentry }} | "
        "{% for level in paged %}{{ level.level }}:{{ level.people[0].name }}{% endfor %} | "
        "{% if next_level %}{{ next_level.level }} {{ next_level.people[0].channels }}"
        "{% endif %}"
    )
    templates.check_template(source, "sms")  # what `check` does with a route's template
    n = dataclasses.replace(critical({"severity": "P0"}), templates={"sms": source})
    assert templates.sms_text(n, TZ) == (
        # Through escape.sms like the built-in text: GSM-7 forms of the dash and the dot.
        "Firing: HighErrorRate - critical - P0 | P0 | payments-api in prod-eu-1/payments | "
        "payments-api prod-eu-1 payments | 09:12 GMT | 6m | {} | 2 | True True | None | "
        "0:Alice Archer | 1 ['sms', 'call']"
    )


def test_every_email_of_a_spell_is_in_one_thread() -> None:
    """The first page opens the thread; an escalation and the resolved notice reply to it."""
    first = critical(channel=Channel.EMAIL)
    assert first.paging is not None
    assert first.paging.first
    opened = thread_headers(first, "alerts@example.com")
    assert set(opened) == {"Message-ID"}
    later = dataclasses.replace(
        first, key="another", paging=dataclasses.replace(first.paging, first=False)
    )
    reply = thread_headers(later, "alerts@example.com")
    assert reply["In-Reply-To"] == reply["References"] == opened["Message-ID"]
    assert reply["Message-ID"] != opened["Message-ID"]
    assert opened["Message-ID"].endswith("@example.com>")
    # The subject is the same whatever the state, so clients that thread by subject agree.
    alerts = tuple(
        dataclasses.replace(a, status=Status.RESOLVED, ends_at=NOW) for a in first.alerts
    )
    assert templates.email_subject(dataclasses.replace(first, alerts=alerts), TZ) == (
        templates.email_subject(first, TZ)
    )


def test_a_notification_made_outside_a_plan_counts_from_the_clock() -> None:
    """Test pages and the like have no plan time: ages count from now, nobody is named paged."""
    n = dataclasses.replace(critical(), paging=None)
    v = view.of(n, TZ)
    assert v.paging is None
    assert not v.started_today  # the fixture is from March 2026
    assert render.paging_lines(v, TZ) == []


def test_check_finds_an_unguarded_next_level() -> None:
    """A resolved group has no next level: `check` says so before a page falls back."""
    templates.check_template("{% if next_level %}{{ next_level.at }}{% endif %}", "sms")
    with pytest.raises(templates.TemplateError, match="resolved group"):
        templates.check_template("{{ next_level.at }}", "sms")


def test_messages_of_one_group_share_a_view_equal_to_their_own() -> None:
    """Every message of a fully escalated critical group: the shared view is the one it would
    have had alone (recipient and acknowledgement its own)."""
    config = load_config(ROUTING, {})
    group = alertmanager.parse(fixture("alertmanager-firing-critical.json"))
    start = min(a.starts_at for a in group.alerts)
    memory = GroupMemory(spell_of(group, None), start)
    result = plan(config, group, start + timedelta(hours=2, minutes=5), memory=memory)
    tz = ZoneInfo("Europe/London")
    assert len(result.notifications) == 13
    for n in result.notifications:
        for ack in (None, AckRef("ABCDE", "token-of-" + n.recipient.name, "https://x.example")):
            one = dataclasses.replace(n, ack=ack)
            assert view.of(one, tz) == view._of(one, tz, None)
    names = {view.of(n, tz).recipient for n in result.notifications}
    assert names == {n.recipient.name for n in result.notifications}
