"""Fake Slack, Twilio and SendGrid for the benchmark: canned success answers, as cheap as possible.

Run as its own process (`python -m bench.fake_vendors`) so its CPU never counts against the
process under test. It listens on one port per vendor host (Slack Web API, Slack webhooks, Twilio,
SendGrid): in production those are different hosts, and aiohttp's per-host connection limit
(`limit_per_host`) must apply per vendor here too, not to all four together.

It prints one JSON line, `{"ports": {...}}`, once every port is listening. `GET /_stats` on any
port returns request counts per endpoint and per client family (User-Agent), which the benchmark
uses to prove the fan-out happened and which HTTP client made the Twilio requests.

It also records, per message key (the webhook's sequence number, bench/keys.py), when the first
and the last request for it arrived (`time.monotonic()`: CLOCK_MONOTONIC, one clock for every
process on the host, so the load generator's send times compare) and how many requests each
endpoint got, to find duplicate sends. `POST /_record?keyed=0|1` starts a new record (keyed=0:
counts only, for the long soak); `GET /_record` returns it.
"""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import sys
import time
from collections import Counter, defaultdict

from aiohttp import web

from bench.keys import message_key

VENDORS = ("slack_api", "slack_webhook", "twilio", "sendgrid")

_SID = "AC" + "0" * 32
_MESSAGE_URI = f"/2010-04-01/Accounts/{_SID}/Messages/SM{'1' * 32}.json"
_CALL_URI = f"/2010-04-01/Accounts/{_SID}/Calls/CA{'2' * 32}.json"
# Bodies shaped like the vendors' (same fields, similar size), so the client parses as much JSON
# as it would in production; built once, since building them per request would load the fake.
TWILIO_MESSAGE = json.dumps(
    {
        "account_sid": _SID,
        "api_version": "2010-04-01",
        "body": "CRIT HighErrorRate @ payments-api prod-eu-1 (2 firing)",
        "date_created": "Sat, 14 Mar 2026 09:13:05 +0000",
        "date_sent": None,
        "date_updated": "Sat, 14 Mar 2026 09:13:05 +0000",
        "direction": "outbound-api",
        "error_code": None,
        "error_message": None,
        "from": "+447700900999",
        "messaging_service_sid": None,
        "num_media": "0",
        "num_segments": "1",
        "price": None,
        "price_unit": "USD",
        "sid": "SM" + "1" * 32,
        "status": "queued",
        "subresource_uris": {"media": _MESSAGE_URI.removesuffix(".json") + "/Media.json"},
        "to": "+447700900101",
        "uri": _MESSAGE_URI,
    }
).encode()
TWILIO_CALL = json.dumps(
    {
        "account_sid": _SID,
        "api_version": "2010-04-01",
        "date_created": "Sat, 14 Mar 2026 09:13:05 +0000",
        "direction": "outbound-api",
        "from": "+447700900999",
        "price_unit": "USD",
        "queue_time": "0",
        "sid": "CA" + "2" * 32,
        "status": "queued",
        "subresource_uris": {
            name: f"{_CALL_URI.removesuffix('.json')}/{name.title()}.json"
            for name in ("notifications", "recordings", "events", "payments")
        },
        "to": "+447700900101",
        "uri": _CALL_URI,
    }
).encode()
SLACK_POSTED = json.dumps(
    {
        "ok": True,
        "channel": "C0INCIDENTS",
        "ts": "1773479585.000100",
        "message": {"type": "message"},
    }
).encode()
SENDGRID_HEADERS = {"X-Message-Id": "bench0000000000000000A"}

counts: Counter[str] = Counter()
clients: Counter[str] = Counter()


class Record:
    """Per message key: first and last arrival, and requests per endpoint."""

    def __init__(self) -> None:
        self.reset(keyed=False)

    def reset(self, *, keyed: bool) -> None:
        self.keyed = keyed
        self.first: dict[str, float] = {}
        self.last: dict[str, float] = {}
        self.sends: defaultdict[str, Counter[str]] = defaultdict(Counter)
        self.unkeyed: Counter[str] = Counter()  # requests whose body named no message key

    def note(self, kind: str, key: str | None, at: float) -> None:
        if key is None:
            self.unkeyed[kind] += 1
            return
        self.first.setdefault(key, at)
        self.last[key] = at
        self.sends[key][kind] += 1

    def as_json(self) -> dict[str, object]:
        return {
            "keyed": self.keyed,
            "first": self.first,
            "last": self.last,
            "sends": self.sends,
            "unkeyed": self.unkeyed,
        }


record = Record()


def _client_family(user_agent: str) -> str:
    # aiohttp says "Python/3.11 aiohttp/3.x"; twilio-python says "twilio-python/9.x (...)".
    if "aiohttp" in user_agent:
        return "aiohttp"
    if "twilio-python" in user_agent:
        return "twilio-python"
    return user_agent[:40] or "none"


def _unauthorized(scheme: str, auth: str) -> bool:
    return not auth.startswith(scheme)


async def handle(request: web.BaseRequest) -> web.StreamResponse:
    # Taken first: the arrival of the request, not the end of our own work on it.
    arrived = time.monotonic()
    if request.path == "/_stats":
        return web.json_response({"requests": counts, "clients": clients})
    if request.path == "/_record":
        if request.method == "POST":
            record.reset(keyed=request.query.get("keyed", "1") == "1")
        return web.json_response(record.as_json())
    # Read the whole body, as a vendor would, before answering.
    body = await request.read()
    path = request.path
    auth = request.headers.get("Authorization", "")
    if path.endswith("/Messages.json"):
        kind = "twilio_messages"
        answer = web.Response(status=201, body=TWILIO_MESSAGE, content_type="application/json")
        refused = _unauthorized("Basic ", auth)
    elif path.endswith("/Calls.json"):
        kind = "twilio_calls"
        answer = web.Response(status=201, body=TWILIO_CALL, content_type="application/json")
        refused = _unauthorized("Basic ", auth)
    elif path.endswith("/v3/mail/send"):
        kind = "sendgrid"
        answer = web.Response(status=202, headers=SENDGRID_HEADERS)
        refused = _unauthorized("Bearer ", auth)
    elif path.endswith("/chat.postMessage"):
        kind = "slack_api"
        answer = web.Response(body=SLACK_POSTED, content_type="application/json")
        refused = _unauthorized("Bearer ", auth)
    else:
        # Any other POST is an incoming webhook: the URL itself is the credential.
        kind = "slack_webhook"
        answer = web.Response(text="ok")
        refused = False
    if refused:
        kind += "_unauthorized"
        answer = web.Response(status=401, text="unauthorized")
    counts[kind] += 1
    clients[f"{kind.split('_')[0]}:{_client_family(request.headers.get('User-Agent', ''))}"] += 1
    if record.keyed:
        form = request.content_type == "application/x-www-form-urlencoded"
        record.note(kind, message_key(body, form=form), arrived)
    return answer


async def serve() -> None:
    server = web.Server(handle, access_log=None)
    runner = web.ServerRunner(server)
    await runner.setup()
    ports: dict[str, int] = {}
    for vendor in VENDORS:
        # Bound here, on port 0, so the port is known without a race with another process.
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        await web.SockSite(runner, sock, backlog=1024).start()
        ports[vendor] = sock.getsockname()[1]
    print(json.dumps({"ports": ports}), flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()


def main() -> int:
    try:
        import uvloop  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        asyncio.run(serve())
    else:  # the fake is not measured: the cheaper it is, the more CPU is left to the others
        uvloop.run(serve())
    return 0


if __name__ == "__main__":
    sys.exit(main())
