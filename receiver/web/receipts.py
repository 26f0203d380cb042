"""Delivery receipts acted on: each vendor report counted once, said in the group's Slack thread
when the page did not reach the person, and a page call no person answered called once more.

- **Tokens.** Every SMS, call and email to a person carries a signed receipt token
  (receiver.delivery.receipt_tokens), signed with `ACK_SECRET` or, without it, the Twilio auth
  token: SMS and calls only with `PUBLIC_URL` (Twilio's `StatusCallback`), email only with
  `SENDGRID_WEBHOOK_PUBLIC_KEY` (its `custom_args`).
- **What a page call said** (its TwiML and the page's SMS text) is kept in the shared store just
  before the call is placed (`keep_page`), so any replica can place the second call.
- **Once per report.** A report is claimed in the shared store by its vendor id and status
  (`receipt:<CallSid>:<status>`): a replayed or duplicated call-back counts nothing twice.
- **The second call.** The replica that took the first call's "no answer" report holds a timer
  for `delivery.call_retry_after`; then it claims `recall:<page>:2` (so however many replicas
  hold a timer, one calls), checks that the group is neither acknowledged (Alertmanager) nor
  resolved (the store's spell), and calls again with what the page said. If that call goes
  unanswered too, the person gets an SMS saying so (claimed as `recall:<page>:3`). Escalation to
  the next level is Alertmanager's re-sends, as before, and is not held up by any of this.
- **A restart.** The timer lives in the replica's memory. On a graceful stop (SIGTERM) a pending
  second call is placed at once, within the drain, rather than lost; if the replica dies
  (killed, OOM), that second call is not placed (nor the SMS after it). The first page and the
  escalation do not depend on it.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
from datetime import datetime
from typing import TYPE_CHECKING

from tenacity import (
    AsyncRetrying,
    retry_if_exception,
    stop_after_attempt,
    stop_after_delay,
    stop_any,
    wait_exponential_jitter,
)

from receiver.ack.store import StoreError
from receiver.channels.base import DeliveryError
from receiver.channels.slack import SlackSender, duration_text
from receiver.channels.twilio_api import TwilioApi, status_callback
from receiver.channels.twilio_voice import call_options, twiml
from receiver.config.settings import Settings
from receiver.delivery import receipt_tokens as tokens
from receiver.delivery.receipt_status import Receipt
from receiver.messages import templates
from receiver.model import Channel, Notification
from receiver.routing.plan import Plan
from receiver.store.base import Claim, group_key

if TYPE_CHECKING:
    from receiver.web.service import Service

log = logging.getLogger("receiver.receipts")

UNANSWERED_PREFIX = "2 calls unanswered: "
MAX_SMS = 1600  # Twilio's limit, in characters
# What a page call said is kept this long past the second call's ring and its report.
PAGE_RECORD_MARGIN = 3600.0
_TWILIO = frozenset({Channel.SMS, Channel.CALL})
_VERB = {Channel.CALL: "Called", Channel.SMS: "Texted", Channel.EMAIL: "Emailed"}


def receipt_secret(settings: Settings) -> str | None:
    """What signs receipt tokens: shared by every replica, like the acknowledgement tokens."""
    return settings.ack_secret or settings.twilio_auth_token


def with_receipts(service: Service, result: Plan, now: datetime) -> Plan:
    """Give each SMS, call and email to a person its receipt token, where a report can come."""
    settings = service.settings
    secret = receipt_secret(settings)
    channels: set[Channel] = set()
    if settings.public_url:
        channels |= _TWILIO
    if settings.sendgrid_webhook_public_key:
        channels.add(Channel.EMAIL)
    if secret is None or not channels or service.dry_run:
        return result
    people = service.config.people
    slack = tuple(sorted({n.recipient.address for n in result.notifications if n.editable}))
    gid = group_key(result.group)
    ack = service.group_id(result.group) if service.ack_enabled else ""
    expires = int(now.timestamp() + service.config.delivery.dedupe_ttl)
    out = []
    for n in result.notifications:
        if n.channel in channels and n.recipient.name in people:
            call = n.channel is Channel.CALL
            token = tokens.ReceiptToken(
                group=gid,
                spell=n.spell,
                person=n.recipient.name,
                channel=n.channel,
                level=n.level,
                attempt=1 if call else 0,
                expires=expires,
                page=n.key if call else "",
                ack=ack,
                slack=slack,
            )
            n = dataclasses.replace(n, receipt=tokens.sign(token, secret))
        out.append(n)
    return dataclasses.replace(result, notifications=tuple(out))


async def keep_page(service: Service, n: Notification) -> None:
    """Before a page call is placed: keep what it says, for a second call and the SMS after."""
    policy = service.config.delivery
    if n.channel is not Channel.CALL or not n.receipt or policy.call_retry_after <= 0:
        return
    try:
        tz = n.timezone or service.config.timezone
        record = json.dumps({"twiml": twiml(n, tz), "sms": templates.sms_text(n, tz)})
    except Exception:
        # The call itself renders the same text and will say what is wrong; this only costs
        # its second call.
        log.exception("cannot keep what the page call says", extra={"to": n.recipient.name})
        return
    ttl = 2 * (policy.call_retry_after + policy.call_timeout) + PAGE_RECORD_MARGIN
    await service.state.remember_page(n.key, record, ttl)


async def handle(
    service: Service, token: tokens.ReceiptToken | None, receipt: Receipt, report: str
) -> str:
    """Count a vendor's report once, tell Slack if it did not reach the person, and follow up
    an unanswered page call. `report` is the vendor's id of the message (CallSid, sg_event_id).
    Returns "ignored" (not final), "duplicate" (counted before) or "counted"."""
    if not receipt.final:
        return "ignored"
    key = f"receipt:{report}:{receipt.status}"
    ttl = service.config.delivery.dedupe_ttl
    if (
        await service.state.claim(key, (), service.config.delivery.deadline + 5)
        is not Claim.CLAIMED
    ):
        return "duplicate"
    try:
        channel = receipt.channel.value
        service.metrics.vendor_status.labels(channel, receipt.status).inc()
        person = token.person if token is not None else None
        if receipt.refused and person in service.config.people:
            service.metrics.carrier_failures.labels(channel, person).inc()
        log.info(
            "delivery receipt",
            extra={
                "channel": channel,
                "to": person,
                "status": receipt.status,
                "level": token.level if token else None,
                "attempt": token.attempt if token else None,
            },
        )
        if token is not None:
            then = _follow_up(service, token, receipt)
            if receipt.notable:
                await _tell_slack(service, token, _line(service, token, receipt, then))
    finally:
        # Counted even if the Slack reply failed: the vendor will not send it again anyway.
        await service.state.settle_many([(key, True)], ttl)
    return "counted"


def _follow_up(service: Service, token: tokens.ReceiptToken, receipt: Receipt) -> str:
    """Start what follows an unanswered page call; in words, for Slack ("" if nothing)."""
    delay = service.config.delivery.call_retry_after
    if not receipt.unanswered or not token.page or delay <= 0 or token.attempt not in (1, 2):
        return ""
    task = asyncio.create_task(
        _after_unanswered(service, token, delay if token.attempt == 1 else 0)
    )
    service.tasks.add(task)
    task.add_done_callback(service.tasks.discard)
    return f"calling again in {duration_text(delay)}" if token.attempt == 1 else "texting them"


def _line(service: Service, token: tokens.ReceiptToken, receipt: Receipt, then: str) -> str:
    person = service.config.people.get(token.person)
    name = person.name if person is not None and person.name else token.person
    again = " again" if receipt.channel is Channel.CALL and token.attempt == 2 else ""
    line = f"{_VERB[receipt.channel]} {name}{again}: {receipt.words}"
    return f"{line}; {then}" if then else line


async def _tell_slack(service: Service, token: tokens.ReceiptToken, text: str) -> None:
    """A reply in the thread of each Slack message that follows the group (Web API channels)."""
    sender = service.senders.get(Channel.SLACK)
    if not isinstance(sender, SlackSender):
        return  # the dry run, or no Slack
    for destination in token.slack:
        ref = await service.state.slack_message(token.where, destination)
        if ref is None:
            continue
        try:
            # Bounded like a page's attempt: the vendor waits for our answer to its report.
            async with asyncio.timeout(service.config.delivery.deadline / 2):
                await sender.reply(ref, text)
        except TimeoutError:
            log.warning("cannot say a delivery receipt in Slack: no answer in time")
        except DeliveryError as e:
            log.warning(
                "cannot say a delivery receipt in Slack",
                extra={"destination": destination, "reason": e.reason, "detail": e.detail},
            )


async def _after_unanswered(service: Service, token: tokens.ReceiptToken, delay: float) -> None:
    """The second call after `delay` (attempt 1), or the SMS after two (attempt 2)."""
    if delay > 0:
        # A graceful stop wakes it early: placed now rather than lost with the process.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(service.draining.wait(), delay)
    step = token.attempt + 1
    claim = f"recall:{token.page}:{step}"
    policy = service.config.delivery
    if await service.state.claim(claim, (), policy.deadline * 2 + 5) is not Claim.CLAIMED:
        return  # another replica got the same report and does it
    outcome = "failed"
    try:
        outcome = await _follow(service, token, step)
    except Exception:
        # A bug of ours must not pass silently in a background task.
        log.exception("following up an unanswered page call failed", extra={"to": token.person})
    finally:
        await service.state.settle_many([(claim, outcome != "failed")], policy.dedupe_ttl)
    service.metrics.call_retries.labels(outcome).inc()
    log.info(
        "unanswered page call followed up",
        extra={"to": token.person, "outcome": outcome, "level": token.level},
    )


async def _follow(service: Service, token: tokens.ReceiptToken, step: int) -> str:
    """Check, then call or text: the outcome (receiver.metrics.CALL_RETRY_OUTCOMES)."""
    reason = await _why_not(service, token)
    if reason is not None:
        return reason
    record = await service.state.page(token.page)
    person = service.config.people.get(token.person)
    if record is None or person is None or not person.phone:
        return "forgotten"
    return await _send(service, token, step, person.phone, json.loads(record))


async def _why_not(service: Service, token: tokens.ReceiptToken) -> str | None:
    """Why the person must not be called (or texted) again: "acknowledged", "resolved" or
    None (go ahead)."""
    memory = (await service.state.recall(token.group)).memory
    if memory is not None and (memory.resolved or memory.spell != token.spell):
        return "resolved"
    if service.store is not None and token.ack:
        try:
            acks = await service.store.acks(token.ack)
        except StoreError as e:
            failure = str(e)
        else:
            now = service.clock()
            return "acknowledged" if any(a.active(now) for a in acks) else None
        # Paging too much beats paging nobody.
        log.error("cannot read acknowledgements; following up anyway", extra={"detail": failure})
    return None


async def _send(
    service: Service, token: tokens.ReceiptToken, step: int, phone: str, record: dict[str, str]
) -> str:
    """Place the second call (step 2) or send the SMS that says two went unanswered (step 3)."""
    settings, policy = service.settings, service.config.delivery
    secret = receipt_secret(settings) or ""
    if step == 2:
        again = tokens.sign(dataclasses.replace(token, attempt=2), secret)
        channel, resource = Channel.CALL, "Calls"
        fields = {
            "Twiml": record["twiml"],
            **call_options(settings.public_url, again, policy.call_timeout),
        }
    else:
        sms = dataclasses.replace(token, channel=Channel.SMS, attempt=0, page="")
        channel, resource = Channel.SMS, "Messages"
        body = (UNANSWERED_PREFIX + record["sms"])[:MAX_SMS]
        fields = {"Body": body, **status_callback(settings.public_url, tokens.sign(sms, secret))}
    if service.session is None:
        return "failed"
    try:
        await _create(service, channel, resource, phone, fields)
    except DeliveryError as e:
        log.warning(
            "cannot follow up an unanswered page call",
            extra={"to": token.person, "reason": e.reason, "detail": e.detail},
        )
        return "failed"
    service.metrics.series(service.metrics.pages, channel.value, token.person).inc()
    return "called" if step == 2 else "texted"


async def _create(
    service: Service, channel: Channel, resource: str, phone: str, fields: dict[str, str]
) -> None:
    """One Twilio create, retried like a page (backoff, `delivery.attempts`, the deadline)."""
    assert service.session is not None
    api = TwilioApi(service.session, service.settings)
    policy = service.config.delivery
    counters = service.metrics.by_channel[channel]
    async for attempt in AsyncRetrying(
        retry=retry_if_exception(lambda e: isinstance(e, DeliveryError) and e.retryable),
        stop=stop_any(stop_after_attempt(policy.attempts), stop_after_delay(policy.deadline)),
        wait=wait_exponential_jitter(multiplier=0.2, max=5.0, jitter=0.2),
        before_sleep=lambda _: counters.retries.inc(),
        reraise=True,
    ):
        with attempt:
            counters.requests.inc()
            try:
                async with asyncio.timeout(policy.deadline / 2):
                    await api.create(resource, phone, fields)
            except TimeoutError:
                counters.requests_failed.inc()
                raise DeliveryError(
                    "deadlineExceeded", "no answer from Twilio", retryable=True
                ) from None
            except DeliveryError:
                counters.requests_failed.inc()
                raise
