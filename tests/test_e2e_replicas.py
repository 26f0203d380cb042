"""End to end with several router replicas sharing Redis, as deployed: the paging promises.

Real processes throughout: two `python -m receiver serve` replicas with REDIS_URL on the test's
own redis-server, behind a round-robin proxy that opens a fresh connection per request (a
Kubernetes Service), fed by the real Alertmanager 0.25 (one, or an HA pair) with the tree
`alertmanager-config` prints, timers shortened to seconds. Vendors are the loopback fakes.

The promises under test:
- each person is paged once per incident and level, whichever replica Alertmanager's re-sends
  and retries land on, and across a replica's restart;
- resolved notices go by SMS to the people paged, never by call;
- with Redis down the router pages anyway (duplicates allowed, nothing lost) and counts it in
  `oncall_router_store_errors_total`.

Pages are counted from what the fakes received, per (person, group, channel, firing/resolved):
the group is the alertname in the text, the person the number it went to.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import re
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp

from receiver.cli.commands.alertmanager_config import build
from receiver.config.load import load_config
from tests.alertmanager_cluster import alertmanager_cluster, settled
from tests.alertmanager_process import Alertmanager, post_alert, shorten_timers, until
from tests.fakes import FakeSendGrid, FakeSlack, FakeTwilio, ServerError
from tests.fakes.twilio import TEST_ACCOUNT_SID
from tests.helpers import settings_for
from tests.redis_process import RedisServer
from tests.router_process import RouterReplica, metric_sum, replica_env, running_replicas
from tests.rr_proxy import RoundRobinProxy

# -- timing (seconds) -------------------------------------------------------------------------
GROUP_WAIT, GROUP_INTERVAL, REPEAT = 1.0, 1.0, 2.0
# Alertmanager 0.25 re-sends on the first group_interval tick after repeat_interval.
RESEND_EVERY = REPEAT + GROUP_INTERVAL
RESENDS = 3  # firing re-sends each group goes through after the disturbance
FIRST_PAGES_WITHIN = 12.0  # group_wait, settling, Slack failures and Alertmanager's backoff
RESENDS_WITHIN = RESENDS * RESEND_EVERY + 8.0
RESOLVED_WITHIN = 12.0
# After the last resolved webhook was answered: long enough for a straggler (the HA peer's
# copy, a retry in flight) to land.
SETTLE = GROUP_INTERVAL + 1.5
REDIS_OUTAGE = 3.0
TEST_BUDGET = 58.0
# HA pair: the second member waits this long for the first one's notification log entry before
# it sends too. With production's 15s the routers would rarely see both members' copies (only
# when a webhook outlasts it, e.g. a slow vendor); at 100ms they do (checked), on both replicas.
PEER_TIMEOUT = "100ms"

# -- the routing -------------------------------------------------------------------------------
TOKEN = "e2e-replicas-bearer-token"
CHANNEL = "C0INCIDENTS"
SLACK_FAILURES = 6  # the first Slack posts answer 503: the router answers 503 after SMS and call
PHONES = {"alice": "+447700900101", "bob": "+447700900102"}
PERSON_OF = {phone: person for person, phone in PHONES.items()}
PRIMARY = "alice"  # first member of the rotation, whose weekly turn started a day ago
# One Alertmanager group each (by alertname). Alertmanager flushes them in bursts, all at once,
# so which replica a group reaches in a round is down to arrival order at the proxy; with five
# groups some reach both replicas over the rounds (checked: otherwise nothing shared is tested).
GROUPS = ("Alpha", "Bravo", "Charlie", "Delta", "Echo")
SERVICE = "e2e"
MESSAGES = f"/2010-04-01/Accounts/{TEST_ACCOUNT_SID}/Messages"
CALLS = f"/2010-04-01/Accounts/{TEST_ACCOUNT_SID}/Calls"
WEBHOOK = "/webhooks/alertmanager"

Page = tuple[str, str, str, str]  # (person or channel, group, channel kind, firing|resolved)


def routing_yaml(now: datetime) -> str:
    """Level 0: SMS and call to the primary, a Slack Web API post; level 1 long after the test."""
    handoff = (now - timedelta(days=1)).strftime("%Y-%m-%d %H:%M")
    return f"""
timezone: UTC
people:
  alice: {{phone: "{PHONES["alice"]}", email: alice@example.com}}
  bob: {{phone: "{PHONES["bob"]}", email: bob@example.com}}
slack:
  incidents: {{channel: {CHANNEL}}}
rotations:
  primary: {{members: [alice, bob], handoff: "{handoff}", turn: 1w}}
routes:
  - name: critical
    severity: [critical]
    targets:
      - {{kind: sms, rotation: primary}}
      - {{kind: call, rotation: primary}}
      - {{kind: slack, channel: incidents}}
    escalation:
      - after: 1h
        targets: [{{kind: sms, person: bob}}]
  - name: everything-else
    targets: [{{kind: sms, person: bob}}]
delivery:
  deadline: 3s
  attempts: 2
  rate_limits: {{slack: 0s, sms: 0s, call: 0s, email: 0s}}
"""


def labels(group: str) -> dict[str, str]:
    return {"alertname": group, "severity": "critical", "service": SERVICE}


# -- counting ---------------------------------------------------------------------------------


def group_in(text: str) -> str:
    """The group an SMS, call script or Slack text is about ("?" if none is named)."""
    found = [g for g in GROUPS if re.search(rf"\b{g}\b", text)]
    return found[0] if len(found) == 1 else "?"


def pages(twilio: FakeTwilio, slack: FakeSlack) -> Counter[Page]:
    """Every SMS and call sent to Twilio (it fails none here) and every Slack post the channel
    holds, by recipient, group, channel and state."""
    out: Counter[Page] = Counter()
    for r in twilio.requests_to(MESSAGES):
        form = r.form()
        body = form.get("Body", "")
        state = "resolved" if body.startswith("RESOLVED") else "firing"
        out[
            PERSON_OF.get(form.get("To", ""), form.get("To", "?")), group_in(body), "sms", state
        ] += 1
    for r in twilio.requests_to(CALLS):
        form = r.form()
        script = form.get("Twiml", "")
        state = "resolved" if re.search(r"\bResolved\b", script) else "firing"
        out[
            PERSON_OF.get(form.get("To", ""), form.get("To", "?")), group_in(script), "call", state
        ] += 1
    # Slack: what the channel holds, thread replies included (a scripted 503 stores nothing).
    shown = slack.history(CHANNEL)
    replies = [r for m in shown if m.get("reply_count") for r in slack.thread(CHANNEL, m["ts"])]
    for message in shown + replies:
        text = str(message.get("text", ""))
        state = "resolved" if "RESOLVED" in text.upper() else "firing"
        out[f"#{CHANNEL}", group_in(text), "slack", state] += 1
    return out


def table(counts: Counter[Page]) -> str:
    """One line per recipient and group: `alice/Alpha: sms firing=1 call firing=2 ...`."""
    rows: dict[tuple[str, str], list[str]] = {}
    for (who, group, kind, state), n in sorted(counts.items()):
        rows.setdefault((who, group), []).append(f"{kind} {state}={n}")
    return "\n".join(f"  {who}/{group}: {' '.join(cells)}" for (who, group), cells in rows.items())


@dataclasses.dataclass(frozen=True)
class Webhook:
    """One webhook as it went through the proxy."""

    group: str
    status: str  # firing | resolved (the group's status in the body)
    sender: str  # the Alertmanager's externalURL
    upstream: str  # replica URL, or "-" when none answered
    code: int
    at: float


def webhooks(proxy: RoundRobinProxy, since: float = 0.0) -> list[Webhook]:
    """The Alertmanager webhooks the proxy forwarded, oldest first."""
    out = []
    for e in proxy.exchanges:
        if e.path_qs != WEBHOOK or e.started_at < since:
            continue
        try:
            body = json.loads(e.body)
        except ValueError:
            body = {}
        group = str(body.get("groupLabels", {}).get("alertname", "?"))
        out.append(
            Webhook(
                group,
                str(body.get("status", "?")),
                str(body.get("externalURL", "?")),
                e.upstream or "-",
                e.status,
                e.started_at,
            )
        )
    return sorted(out, key=lambda w: w.at)


def webhook_summary(proxy: RoundRobinProxy, replicas: Sequence[RouterReplica]) -> str:
    """Per group: how many firing/resolved webhooks each replica answered with which status."""
    names = {r.url: r.name for r in replicas}
    senders = sorted({w.sender for w in webhooks(proxy)})
    counts = Counter(
        (w.group, w.status, names.get(w.upstream, w.upstream), w.code, senders.index(w.sender))
        for w in webhooks(proxy)
    )
    lines = [f"  Alertmanagers: {dict(enumerate(senders))}"]
    for group in sorted({key[0] for key in counts}):
        cells = [
            f"{status}->{replica}:{code}(am{am})x{n}"
            for (g, status, replica, code, am), n in sorted(counts.items())
            if g == group
        ]
        lines.append(f"  {group}: {' '.join(cells)}")
    return "\n".join(lines)


def timeline(proxy: RoundRobinProxy, replicas: Sequence[RouterReplica], t0: float) -> str:
    """Every webhook in order: `+3.02s Alpha firing am0->r1 200`."""
    names = {r.url: r.name for r in replicas}
    senders = sorted({w.sender for w in webhooks(proxy)})
    return "\n".join(
        f"  +{w.at - t0:.2f}s {w.group} {w.status} am{senders.index(w.sender)}->"
        f"{names.get(w.upstream, w.upstream)} {w.code}"
        for w in webhooks(proxy)
    )


def status_of(
    twilio: FakeTwilio,
    slack: FakeSlack,
    proxy: RoundRobinProxy,
    replicas: Sequence[RouterReplica],
    t0: float,
) -> Callable[[], str]:
    """What `until` prints when it gives up, and what the tests print at the end."""

    def status() -> str:
        return (
            f"at t+{time.monotonic() - t0:.1f}s\npages (person/group: channel state=count):\n"
            f"{table(pages(twilio, slack))}\nwebhooks through the proxy:\n"
            f"{webhook_summary(proxy, replicas)}\ntimeline:\n{timeline(proxy, replicas, t0)}"
        )

    return status


def paged(counts: Counter[Page], groups: Iterable[str], kind: str, state: str) -> bool:
    return all(counts[PRIMARY, g, kind, state] >= 1 for g in groups)


def answered(
    proxy: RoundRobinProxy, group: str, state: str, since: float = 0.0, sender: str | None = None
) -> int:
    """Webhooks of a group in a state that a replica answered 200 (that Alertmanager is done
    with them), from one Alertmanager or any."""
    return sum(
        1
        for w in webhooks(proxy, since)
        if w.group == group
        and w.status == state
        and w.code == 200
        and (sender is None or w.sender == sender)
    )


def one_replica_only(proxy: RoundRobinProxy, groups: Iterable[str]) -> list[str]:
    """Groups whose firing webhooks all reached the same replica (the test then proves less)."""
    reached: dict[str, set[str]] = {g: set() for g in groups}
    for w in webhooks(proxy):
        if w.status == "firing" and w.code in (200, 503) and w.group in reached:
            reached[w.group].add(w.upstream)
    return [g for g, upstreams in reached.items() if len(upstreams) < 2]


def once_each(counts: Counter[Page], groups: Iterable[str]) -> list[str]:
    """The broken promises: the primary hears of each group once firing (SMS and call) and
    once resolved (SMS only); nobody else is paged."""
    want: Counter[Page] = Counter()
    for g in groups:
        want[PRIMARY, g, "sms", "firing"] = 1
        want[PRIMARY, g, "call", "firing"] = 1
        want[PRIMARY, g, "sms", "resolved"] = 1
    people = {k: n for k, n in counts.items() if k[2] != "slack"}
    problems = []
    for key in sorted(set(want) | set(people)):
        who, group, kind, state = key
        got, expected = people.get(key, 0), want[key]
        if got != expected:
            what = (
                "duplicate" if got > expected > 0 else "missing" if got < expected else "unwanted"
            )
            problems.append(f"{who}/{group} {kind} {state}: {got} (want {expected}) [{what}]")
    return problems


def lost(counts: Counter[Page], groups: Iterable[str]) -> list[str]:
    """Pages that never arrived: firing SMS and call, resolved SMS, per group's primary."""
    return [
        f"{PRIMARY}/{g} {kind} {state}: 0"
        for g in groups
        for kind, state in (("sms", "firing"), ("call", "firing"), ("sms", "resolved"))
        if counts[PRIMARY, g, kind, state] == 0
    ]


def duplicates(counts: Counter[Page]) -> list[str]:
    return [
        f"{who}/{g} {kind} {state}: {n}"
        for (who, g, kind, state), n in sorted(counts.items())
        if n > 1 and kind != "slack"
    ]


async def post_all(
    session: aiohttp.ClientSession,
    ams: Sequence[Alertmanager],
    groups: Iterable[str],
    started: datetime,
    **ends: datetime,
) -> None:
    """Post (or resolve, with endsAt) each group's alert to every Alertmanager, as Prometheus
    sends to every member of an HA pair."""
    for group in groups:
        for am in ams:
            await post_alert(session, am, labels(group), startsAt=started, **ends)


def setup(
    tmp_path: Path,
    slack: FakeSlack,
    twilio: FakeTwilio,
    sendgrid: FakeSendGrid,
    redis: RedisServer,
) -> tuple[Path, dict[str, str], Path]:
    """The routing file, the replicas' environment and the bearer token file."""
    routing = tmp_path / "routing.yaml"
    routing.write_text(routing_yaml(datetime.now(UTC)))
    settings = dataclasses.replace(settings_for(slack, twilio, sendgrid), receiver_auth_token=TOKEN)
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN)
    return routing, replica_env(settings, redis.url), token_file


def alertmanager_yaml(routing: Path, proxy: RoundRobinProxy, token_file: Path) -> dict[str, Any]:
    """What `alertmanager-config` prints for the routing file, posting to the proxy, timers
    shortened."""
    config = build(load_config(routing, {}), proxy.url + WEBHOOK, str(token_file))
    shorten_timers(config["route"], GROUP_WAIT, GROUP_INTERVAL, REPEAT)
    return config


# -- the tests ----------------------------------------------------------------------------------


async def test_two_replicas_page_each_person_once(
    alertmanager: Alertmanager,
    redis_server: RedisServer,
    tmp_path: Path,
    fake_slack: FakeSlack,
    fake_twilio: FakeTwilio,
    fake_sendgrid: FakeSendGrid,
) -> None:
    """5 groups, 2 replicas, retries, a restart: 1 SMS + 1 call each, 1 resolved SMS, no call."""
    routing, env, token_file = setup(tmp_path, fake_slack, fake_twilio, fake_sendgrid, redis_server)
    fake_slack.script_for(CHANNEL, *[ServerError(503)] * SLACK_FAILURES)
    t0 = time.monotonic()
    async with (
        asyncio.timeout(TEST_BUDGET),
        aiohttp.ClientSession() as session,
        running_replicas(("r0", "r1"), routing, env, tmp_path / "replicas", session) as replicas,
        RoundRobinProxy([r.url for r in replicas]) as proxy,
    ):
        status = status_of(fake_twilio, fake_slack, proxy, replicas, t0)
        alertmanager.start(alertmanager_yaml(routing, proxy, token_file))
        with alertmanager.log_on_failure(), redis_server.log_on_failure():
            await alertmanager.ready(session)
            started = datetime.now(UTC)
            await post_all(session, [alertmanager], GROUPS, started)

            await until(
                "every group's first SMS and call",
                lambda: all(
                    paged(pages(fake_twilio, fake_slack), GROUPS, kind, "firing")
                    for kind in ("sms", "call")
                ),
                FIRST_PAGES_WITHIN,
                status,
            )
            # A replica goes away and comes back with empty memory (a rollout, an OOM kill).
            code = await replicas[0].restart(session)
            assert code == 0, f"r0 did not drain cleanly on SIGTERM (exit {code})"
            restarted = replicas[0].started_at[-1]

            await until(
                f"{RESENDS} firing re-sends of every group after the restart",
                lambda: all(answered(proxy, g, "firing", restarted) >= RESENDS for g in GROUPS),
                RESENDS_WITHIN,
                status,
            )
            await post_all(session, [alertmanager], GROUPS, started, endsAt=datetime.now(UTC))
            await until(
                "every group's resolved webhook answered 200",
                lambda: all(answered(proxy, g, "resolved") >= 1 for g in GROUPS),
                RESOLVED_WITHIN,
                status,
            )
            await asyncio.sleep(SETTLE)

            # The harness did what the scenario says, or the counts below mean nothing.
            hooks = webhooks(proxy)
            assert fake_slack.pending == 0, f"Slack failures left unused\n{status()}"
            assert any(w.code == 503 for w in hooks), f"no 503: nothing was retried\n{status()}"
            pinned = one_replica_only(proxy, GROUPS)
            print(f"groups whose webhooks all reached one replica: {pinned or 'none'}")
            assert len(pinned) < len(GROUPS), f"no group reached both replicas\n{status()}"
            assert any(w.upstream == replicas[0].url and w.at > restarted for w in hooks), (
                f"the restarted replica got no webhook\n{status()}"
            )

            counts = pages(fake_twilio, fake_slack)
            print(status())
            problems = once_each(counts, GROUPS)
            assert not problems, (
                "paging promises broken (person/group channel state: count):\n  "
                + "\n  ".join(problems)
                + f"\n{status()}"
            )


async def test_redis_outage_loses_no_page(
    alertmanager: Alertmanager,
    redis_server: RedisServer,
    tmp_path: Path,
    fake_slack: FakeSlack,
    fake_twilio: FakeTwilio,
    fake_sendgrid: FakeSendGrid,
) -> None:
    """Redis down 3 s as 2 groups arrive: no page lost (duplicates allowed), errors counted."""
    routing, env, token_file = setup(tmp_path, fake_slack, fake_twilio, fake_sendgrid, redis_server)
    before, during = GROUPS[:3], GROUPS[3:]
    t0 = time.monotonic()
    async with (
        asyncio.timeout(TEST_BUDGET),
        aiohttp.ClientSession() as session,
        running_replicas(("r0", "r1"), routing, env, tmp_path / "replicas", session) as replicas,
        RoundRobinProxy([r.url for r in replicas]) as proxy,
    ):
        status = status_of(fake_twilio, fake_slack, proxy, replicas, t0)
        alertmanager.start(alertmanager_yaml(routing, proxy, token_file))
        with alertmanager.log_on_failure(), redis_server.log_on_failure():
            await alertmanager.ready(session)
            started = datetime.now(UTC)
            await post_all(session, [alertmanager], before, started)
            await until(
                "the first groups' SMS and call",
                lambda: all(
                    paged(pages(fake_twilio, fake_slack), before, kind, "firing")
                    for kind in ("sms", "call")
                ),
                FIRST_PAGES_WITHIN,
                status,
            )

            redis_server.stop()
            down_at = time.monotonic()
            await post_all(session, [alertmanager], during, started)
            await asyncio.sleep(max(0.0, REDIS_OUTAGE - (time.monotonic() - down_at)))
            redis_server.start()
            up_at = time.monotonic()

            await until(
                "every group's SMS and call",
                lambda: all(
                    paged(pages(fake_twilio, fake_slack), GROUPS, kind, "firing")
                    for kind in ("sms", "call")
                ),
                FIRST_PAGES_WITHIN,
                status,
            )
            await until(
                "2 firing re-sends of every group with Redis back",
                lambda: all(answered(proxy, g, "firing", up_at) >= 2 for g in GROUPS),
                RESENDS_WITHIN,
                status,
            )
            await post_all(session, [alertmanager], GROUPS, started, endsAt=datetime.now(UTC))
            await until(
                "every group's resolved webhook answered 200",
                lambda: all(answered(proxy, g, "resolved") >= 1 for g in GROUPS),
                RESOLVED_WITHIN,
                status,
            )
            await asyncio.sleep(SETTLE)

            hooks = webhooks(proxy)
            arrived_while_down = {w.group for w in hooks if down_at <= w.at < up_at}
            assert set(during) <= arrived_while_down, (
                f"the new groups did not reach the routers while Redis was down\n{status()}"
            )
            pinned = one_replica_only(proxy, GROUPS)
            print(f"groups whose webhooks all reached one replica: {pinned or 'none'}")
            assert len(pinned) < len(GROUPS), f"no group reached both replicas\n{status()}"
            texts = [await r.metrics(session) for r in replicas]
            store_errors = sum(metric_sum(t, "oncall_router_store_errors_total") for t in texts)
            counts = pages(fake_twilio, fake_slack)
            print(status())
            print(f"duplicates (allowed during the outage): {duplicates(counts) or 'none'}")
            print(f"oncall_router_store_errors_total over both replicas: {store_errors:g}")
            problems = [f"lost: {m}" for m in lost(counts, GROUPS)]
            problems += [
                f"resolved by call: {who}/{g}: {n}"
                for (who, g, kind, state), n in sorted(counts.items())
                if kind == "call" and state == "resolved"
            ]
            if store_errors <= 0:
                problems.append(
                    "Redis was down for 3 s during webhooks, yet oncall_router_store_errors_total "
                    f"summed over both replicas is {store_errors:g}"
                )
            assert not problems, "\n  ".join(["promises broken:", *problems]) + f"\n{status()}"


async def test_ha_alertmanager_pair_pages_once(
    redis_server: RedisServer,
    tmp_path: Path,
    fake_slack: FakeSlack,
    fake_twilio: FakeTwilio,
    fake_sendgrid: FakeSendGrid,
) -> None:
    """An HA Alertmanager pair, 2 replicas: 1 SMS + 1 call per group, 1 resolved SMS, no call."""
    routing, env, token_file = setup(tmp_path, fake_slack, fake_twilio, fake_sendgrid, redis_server)
    t0 = time.monotonic()
    with alertmanager_cluster(tmp_path / "alertmanagers", 2, PEER_TIMEOUT) as ams:
        async with (
            asyncio.timeout(TEST_BUDGET),
            aiohttp.ClientSession() as session,
            running_replicas(
                ("r0", "r1"), routing, env, tmp_path / "replicas", session
            ) as replicas,
            RoundRobinProxy([r.url for r in replicas]) as proxy,
        ):
            status = status_of(fake_twilio, fake_slack, proxy, replicas, t0)
            am_config = alertmanager_yaml(routing, proxy, token_file)
            for am in ams:
                am.start(am_config)
            with ams[0].log_on_failure(), ams[1].log_on_failure(), redis_server.log_on_failure():
                await settled(session, ams)
                started = datetime.now(UTC)
                await post_all(session, ams, GROUPS, started)
                await until(
                    "every group's first SMS and call",
                    lambda: all(
                        paged(pages(fake_twilio, fake_slack), GROUPS, kind, "firing")
                        for kind in ("sms", "call")
                    ),
                    FIRST_PAGES_WITHIN,
                    status,
                )
                await until(
                    f"{RESENDS} firing re-sends of every group by one member",
                    lambda: all(
                        max(answered(proxy, g, "firing", sender=am.url) for am in ams)
                        >= RESENDS + 1
                        for g in GROUPS
                    ),
                    RESENDS_WITHIN,
                    status,
                )
                await post_all(session, ams, GROUPS, started, endsAt=datetime.now(UTC))
                await until(
                    "every group's resolved webhook answered 200",
                    lambda: all(answered(proxy, g, "resolved") >= 1 for g in GROUPS),
                    RESOLVED_WITHIN,
                    status,
                )
                await asyncio.sleep(SETTLE)

                senders = {w.sender for w in webhooks(proxy)}
                assert senders == {am.url for am in ams}, (
                    f"webhooks came from {senders}, not from both members\n{status()}"
                )
                pinned = one_replica_only(proxy, GROUPS)
                print(f"groups whose webhooks all reached one replica: {pinned or 'none'}")
                assert len(pinned) < len(GROUPS), f"no group reached both replicas\n{status()}"
                counts = pages(fake_twilio, fake_slack)
                print(status())
                problems = once_each(counts, GROUPS)
                assert not problems, (
                    "paging promises broken (person/group channel state: count):\n  "
                    + "\n  ".join(problems)
                    + f"\n{status()}"
                )
