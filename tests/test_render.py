"""Times in messages: the zone's own name, a numeric offset where the zone has none."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from receiver.messages import render


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
