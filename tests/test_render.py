"""Times in messages (the zone's own name, a numeric offset where the zone has none, the date when
not today) and speech written for the ear."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from receiver.messages import render, spoken, view


def test_times_carry_the_zone_name() -> None:
    """A named zone shows its abbreviation, summer or winter."""
    winter = datetime(2026, 3, 16, 9, 5, tzinfo=UTC).astimezone(ZoneInfo("Europe/London"))
    summer = datetime(2026, 7, 16, 9, 5, tzinfo=UTC).astimezone(ZoneInfo("Europe/London"))
    assert render.stamp(winter) == "2026-03-16 09:05 GMT"
    assert render.clock(summer) == "10:05 BST"


def test_a_fixed_offset_zone_has_its_offset() -> None:
    """A zone without an abbreviation shows its offset."""
    when = datetime(2026, 3, 16, 9, 6, tzinfo=UTC).astimezone(ZoneInfo("Etc/GMT-2"))
    assert render.stamp(when) == "2026-03-16 11:06 +02"


# -- speech for the ear --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("written", "said"),
    [
        ("HighErrorRate", "High error rate"),
        ("Payments APIDown", "Payments API down"),
        ("KubePodCrashLooping", "Kube pod crash looping"),
        ("IPv6Down on iOS", "IPv6Down on iOS"),  # a lone letter would be spelled: kept whole
        ("pod api-3 is crash looping..", "pod api 3 is crash looping"),
        ("wait… really?!", "wait. really?"),
        (
            "GatewayTimeout: upstream timed out after 10.0s",
            "Gateway timeout, upstream timed out after 10 seconds",
        ),
        ("latency > 500ms for 5m (p99)", "latency above 500 milliseconds for 5 minutes p99"),
        ("5xx ratio is 12.4% & rising", "5xx ratio is 12.4 percent and rising"),
        ("see https://runbooks.example.com/x now", "see now"),
        ("Pod payments/payments-api-7d9f8c6b5-x2k4p down", "Pod payments api down"),
    ],
)
def test_speech_is_written_for_the_ear(written: str, said: str) -> None:
    """No symbols, ellipses, URLs or hashes read aloud; names split only where it reads better."""
    assert spoken.words(written) == said


def test_durations_and_times_are_said_as_people_say_them() -> None:
    now = datetime(2026, 3, 16, 9, 19, tzinfo=UTC)
    assert spoken.duration(30) == "less than a minute"
    assert spoken.duration(3600) == "1 hour"
    assert spoken.duration(2 * 3600 + 13 * 60) == "2 hours and 13 minutes"
    assert spoken.duration(9 * 86400 + 3600) == "9 days and 1 hour"
    assert spoken.when(datetime(2026, 3, 16, 9, 5, tzinfo=UTC), now) == "9:05 UTC"
    assert spoken.when(datetime(2026, 3, 7, 12, 42, tzinfo=UTC), now) == (
        "Saturday 7 March at 12:42 UTC"
    )
    assert spoken.when(datetime(2025, 3, 7, 12, 42, tzinfo=UTC), now).startswith(
        "Friday 7 March 2025"
    )


def test_written_times_carry_the_date_when_not_today() -> None:
    """A 9-day-old alert must not read as if it started this morning."""
    now = datetime(2026, 3, 16, 9, 19, tzinfo=UTC).astimezone(ZoneInfo("Europe/London"))
    at = datetime(2026, 3, 7, 12, 42, tzinfo=UTC).astimezone(ZoneInfo("Europe/London"))
    assert view.when_text(now.replace(hour=8, minute=58), now) == "08:58 GMT"
    assert view.when_text(at, now) == "Sat 7 Mar 12:42 GMT"
    assert view.when_text(at.replace(year=2025), now) == "Fri 7 Mar 2025 12:42 GMT"
    assert view.duration(20) == "<1m"
    assert view.duration(9 * 86400 + 7 * 3600 + 60) == "9d 7h"
    assert view.duration(2 * 3600 + 13 * 60) == "2h 13m"
