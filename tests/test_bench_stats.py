"""The benchmark's arithmetic and tracing (bench/stats.py, bench/keys.py, bench/bars.py) and the
one-line router's texts; the benchmark itself (`python -m bench`) is too slow and too noisy for
the suite."""

from __future__ import annotations

import itertools
import json
import math
from datetime import UTC, datetime
from urllib.parse import urlencode

import pytest

from bench import bars, keys, one_line_router
from bench.load import Payloads
from bench.services import ROUTING
from bench.stats import (
    Figures,
    Spread,
    complete,
    duplicate_sends,
    percentile,
    second_half_growth,
    slope,
)
from receiver.config.load import load_config
from receiver.model import Channel
from receiver.routing.plan import plan
from receiver.sources import alertmanager


def test_spread_is_min_median_max_and_leaves_out_rounds_that_measured_nothing() -> None:
    spread = Spread.of([3.0, 1.0, math.nan, 2.0, 10.0])
    assert (spread.low, spread.median, spread.high, spread.n) == (1.0, 2.5, 10.0, 4)
    assert spread.text(".1f", " ms") == "1.0/2.5/10.0 ms (1 of 5 rounds n/a)"
    assert Spread.of([4.0, 4.0]).text(".0f") == "4"
    assert Spread.of([]).text() == "n/a"


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 0.5) == 50.0
    assert percentile(values, 0.99) == 99.0
    assert percentile([7.0], 0.99) == 7.0
    assert math.isnan(percentile([], 0.5))


def test_slope_is_least_squares() -> None:
    assert slope([(0, 1.0), (1, 3.0), (2, 5.0)]) == pytest.approx(2.0)
    assert slope([(5, 1.0)]) == 0.0


def test_rss_growth_is_fitted_over_the_second_half_only() -> None:
    # Climbs while the dedupe store fills, then flat: flat.
    filling = [(i * 1000, 60.0 + min(i, 5) * 4 + (i % 2) * 0.2) for i in range(11)]
    growth, flat = second_half_growth(filling)
    assert abs(growth) < 1.0
    assert flat
    # 0.5 MiB per 1,000 webhooks all the way: 2.5 MiB over the second half, a leak.
    leaking = [(i * 1000, 60.0 + i * 0.5) for i in range(11)]
    growth, flat = second_half_growth(leaking)
    assert growth == pytest.approx(2.5)
    assert not flat


def test_duplicates_count_every_request_beyond_the_first_per_message() -> None:
    sends = {
        "1000001": {"sms": 1, "call": 1, "email": 1, "slack": 1},
        "1000002": {"sms": 2, "call": 1, "email": 3},
    }
    assert duplicate_sends(sends) == 3
    assert complete(sends, ("sms", "call", "email", "slack")) == {"1000001"}


def test_figures_keep_each_value_with_its_load_average() -> None:
    figures = Figures()
    figures.add("router", "req/s", 400.0, 1.5)
    figures.add("router", "req/s", 420.0, 2.25)
    assert figures.spread("router", "req/s").median == 410.0
    assert figures.load("router", "req/s") == "load 1.50-2.25"
    assert figures.load("relay", "req/s") == "load n/a"


@pytest.mark.parametrize(
    ("body", "form"),
    [
        (b'{"text": "[FIRING:2] HighErrorRate payments-api-1000042 in prod-eu-1"}', False),
        (urlencode({"Body": "CRIT HighErrorRate @ payments-api-1000042 prod"}).encode(), True),
        (
            urlencode(
                {"Twiml": "<Response><Say>on payments api 1000042, in prod</Say></Response>"}
            ).encode(),
            True,
        ),
    ],
    ids=["json", "sms-form", "spoken-call"],
)
def test_each_channel_body_names_its_webhook(body: bytes, form: bool) -> None:
    assert keys.message_key(body, form=form) == "1000042"


def test_the_one_line_router_names_each_webhook_in_the_relays_words() -> None:
    # The fakes count a request only if they find its webhook's number in it.
    config = load_config(ROUTING, {"BENCH_SLACK_WEBHOOK_URL": "http://127.0.0.1:1/services/T/B/x"})
    key, body = Payloads(itertools.count(keys.FIRST + 7)).next()
    result = plan(config, alertmanager.parse(json.loads(body)), datetime.now(UTC))
    bodies: dict[Channel, tuple[bytes, bool]] = {}
    for n in result.notifications:
        if n.channel is Channel.SLACK:
            bodies[n.channel] = (json.dumps(one_line_router.slack_message(n, UTC)).encode(), False)
        elif n.channel is Channel.EMAIL:
            mail = one_line_router.mail_body(n, UTC, "alerts@example.com")
            bodies[n.channel] = (json.dumps(mail).encode(), False)
        elif n.channel is Channel.SMS:
            form = urlencode({"Body": one_line_router.sms_text(n, UTC)})
            bodies[n.channel] = (form.encode(), True)
        else:
            form = urlencode({"Twiml": one_line_router.twiml(n, UTC)})
            bodies[n.channel] = (form.encode(), True)
    assert set(bodies) == {Channel.SLACK, Channel.EMAIL, Channel.SMS, Channel.CALL}
    assert {
        channel: keys.message_key(b, form=f) for channel, (b, f) in bodies.items()
    } == dict.fromkeys(bodies, key)
    assert one_line_router.sms_text(result.notifications[0], UTC) == (
        f"[FIRING] HighErrorRate payments-api-{key} (2 alerts)"
    )


def test_no_other_number_passes_for_a_message_key() -> None:
    text = b"Payments api 5xx error rate above 5 percent; payments-api (10.42.3.17:8080) 2026"
    assert keys.message_key(text) is None
    with pytest.raises(ValueError, match="start at"):
        keys.service(42)


def test_bars_are_marked_met_not_met_or_not_measured() -> None:
    assert bars.PLAIN_RATIO.met(0.9) is True
    assert bars.BIG_GROUP_MS.met(150.0) is False  # "under 150 ms" is strict
    assert bars.FIRST_VENDOR_P99_MS.met(math.nan) is None
    assert bars.verdict("x", None) == "[bar x: not measured]"
    assert bars.verdict("x", False) == "[bar x: NOT met]"
