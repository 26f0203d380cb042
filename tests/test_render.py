"""The hand-written time formats equal strftime's, in every zone and across DST changes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from hypothesis import given
from hypothesis import strategies as st

from receiver import render

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
