"""Render helpers: hand-written time formats equal strftime's; remembered facts never mix groups."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from hypothesis import given
from hypothesis import strategies as st

from receiver import render
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

ZONES = ("UTC", "Europe/London", "America/New_York", "Asia/Kolkata", "Australia/Lord_Howe")


@given(
    st.datetimes(min_value=datetime(1970, 1, 2), max_value=datetime(8999, 12, 31)),
    st.sampled_from(ZONES),
)
def test_times_read_as_strftime_writes_them(naive: datetime, zone: str) -> None:
    when = naive.replace(tzinfo=UTC).astimezone(ZoneInfo(zone))
    assert render.hhmm(when) == f"{when:%H:%M}"
    assert render.stamp(when) == f"{when:%Y-%m-%d %H:%M %Z}"
    assert render.clock(when) == f"{when:%H:%M} {when.tzname()}"


def test_a_fixed_offset_zone_has_its_name() -> None:
    when = datetime(2026, 3, 16, 9, 5, tzinfo=UTC).astimezone(ZoneInfo("Etc/GMT-2")) + timedelta(
        minutes=1
    )
    assert render.stamp(when) == "2026-03-16 11:06 +02"


def _notification(service: str, alertname: str) -> Notification:
    alert = Alert(
        source=Source.ALERTMANAGER,
        status=Status.FIRING,
        labels={"alertname": alertname, "service": service},
        annotations={"summary": f"{alertname} on {service}"},
        starts_at=datetime(2026, 3, 16, 9, 0, tzinfo=UTC),
        fingerprint=f"{service}{alertname}",
    )
    group = AlertGroup(Source.ALERTMANAGER, f"{{}}:{service}", Status.FIRING, (alert,))
    return Notification("k", Channel.SMS, Recipient("a", "+1"), Severity.HIGH, "r", group, (alert,))


def test_remembered_facts_are_never_another_groups() -> None:
    """The memo answers by tuple identity; freed tuples and many groups never mix answers."""
    for round_ in range(3):
        for i in range(render._RECENT_SIZE * 2):
            n = _notification(f"svc-{i}", f"Alert{round_}")
            expected = (f"svc-{i}", f"Alert{round_}", f"Alert{round_} on svc-{i}")
            assert (render.where(n), render.name(n), render.summary(n)) == expected
            del n  # frees the tuple unless the memo holds it: ids get reused
    assert len(render._RECENT) <= render._RECENT_SIZE
