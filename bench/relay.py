"""The baseline: the least an aiohttp service can do for the same webhook.

It accepts `POST /webhooks/alertmanager`, parses the JSON, makes the same four vendor requests as
the router's critical route (Slack incoming webhook, Twilio Messages, Twilio Calls, SendGrid mail
send) concurrently over one shared ClientSession, and answers 200. No routing, templates, retries,
dedupe, metrics or logging: the gap between it and the router is what those cost.

It reads the same environment as the router (vendor base URLs and dummy credentials), plus
`BENCH_SLACK_WEBHOOK_URL`. Run as its own process (`python -m bench.relay [--loop uvloop]
[--json orjson]`); it prints one JSON line, `{"port": N}`, once listening. By default it runs on
plain asyncio and the standard json module, the fixed reference; with `--loop uvloop --json orjson`
it is the same-stack peer of `serve --loop uvloop`. Its texts name the group's `service` label, as
the router's do, so the fake vendors can trace each request to its webhook (bench/keys.py).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import importlib
import json
import os
import signal
import socket
import sys
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

import aiohttp
from aiohttp import web

SESSION = web.AppKey("session", aiohttp.ClientSession)
# The 5,000-alert group is ~4 MB; aiohttp's default limit is 1 MiB.
MAX_BODY = 16 * 1024 * 1024


class Codec:
    """JSON decode of the webhook and encode of the vendor bodies and the answer."""

    def __init__(self, name: str) -> None:
        self.name = name
        if name == "orjson":
            orjson = importlib.import_module("orjson")
            self.loads: Callable[[bytes], Any] = orjson.loads
            self.dumps: Callable[[Any], bytes] = orjson.dumps
        else:
            self.loads = json.loads
            self.dumps = lambda value: json.dumps(value).encode()


CODEC = web.AppKey("codec", Codec)


class Vendors:
    """Endpoint URLs and credentials, resolved once at start-up."""

    def __init__(self, env: dict[str, str]) -> None:
        sid = env["TWILIO_ACCOUNT_SID"]
        twilio = f"{env['TWILIO_API_URL'].rstrip('/')}/2010-04-01/Accounts/{sid}"
        self.slack_webhook = env["BENCH_SLACK_WEBHOOK_URL"]
        self.messages = f"{twilio}/Messages.json"
        self.calls = f"{twilio}/Calls.json"
        self.mail = f"{env['SENDGRID_API_URL'].rstrip('/')}/v3/mail/send"
        basic = base64.b64encode(f"{sid}:{env['TWILIO_AUTH_TOKEN']}".encode()).decode()
        self.twilio_headers = {"Authorization": f"Basic {basic}"}
        self.sendgrid_headers = {"Authorization": f"Bearer {env['SENDGRID_API_KEY']}"}
        self.twilio_from = env["TWILIO_FROM"]
        self.mail_from = env["SENDGRID_FROM"]


VENDORS = web.AppKey("vendors", Vendors)


async def _post(session: aiohttp.ClientSession, url: str, **kwargs: Any) -> int:
    async with session.post(url, **kwargs) as response:
        await response.read()
        return response.status


async def alertmanager(request: web.Request) -> web.Response:
    codec = request.app[CODEC]
    body = codec.loads(await request.read())
    session, v = request.app[SESSION], request.app[VENDORS]
    alerts = body.get("alerts") or [{}]
    name = alerts[0].get("labels", {}).get("alertname", "alert")
    service = body.get("commonLabels", {}).get("service", "")
    text = f"[{body.get('status', 'firing').upper()}] {name} {service} ({len(alerts)} alerts)"
    json_headers = {"Content-Type": "application/json"}
    statuses = await asyncio.gather(
        _post(session, v.slack_webhook, data=codec.dumps({"text": text}), headers=json_headers),
        _post(
            session,
            v.messages,
            data={"To": "+447700900101", "From": v.twilio_from, "Body": text},
            headers=v.twilio_headers,
        ),
        _post(
            session,
            v.calls,
            data={
                "To": "+447700900101",
                "From": v.twilio_from,
                "Twiml": f"<Response><Say>{text}</Say><Hangup/></Response>",
            },
            headers=v.twilio_headers,
        ),
        _post(
            session,
            v.mail,
            data=codec.dumps(
                {
                    "personalizations": [{"to": [{"email": "alice@example.com"}]}],
                    "from": {"email": v.mail_from},
                    "subject": text,
                    "content": [{"type": "text/plain", "value": text}],
                }
            ),
            headers={**v.sendgrid_headers, **json_headers},
        ),
    )
    # A non-2xx vendor answer must show up as an error in the load generator, not pass silently.
    ok = all(200 <= status < 300 for status in statuses)
    answer = codec.dumps({"status": "accepted" if ok else "failed"})
    return web.Response(body=answer, status=200 if ok else 502, content_type="application/json")


async def healthy(request: web.Request) -> web.Response:
    # Probed while a large group is handled, to see whether the loop was blocked.
    return web.Response(text="ok")


async def client_session(app: web.Application) -> AsyncIterator[None]:
    # The router's connector settings, so pooling is not where the two differ.
    connector = aiohttp.TCPConnector(limit=256, limit_per_host=0)
    async with aiohttp.ClientSession(connector=connector) as session:
        app[SESSION] = session
        yield


async def serve(codec: Codec) -> None:
    app = web.Application(client_max_size=MAX_BODY)
    app[VENDORS] = Vendors(dict(os.environ))
    app[CODEC] = codec
    app.cleanup_ctx.append(client_session)
    app.router.add_post("/webhooks/alertmanager", alertmanager)
    app.router.add_get("/-/healthy", healthy)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    await web.SockSite(runner, sock, backlog=1024).start()
    print(json.dumps({"port": sock.getsockname()[1]}), flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.relay", description=__doc__)
    parser.add_argument("--loop", choices=("asyncio", "uvloop"), default="asyncio")
    parser.add_argument("--json", choices=("json", "orjson"), default="json")
    args = parser.parse_args(argv)
    codec = Codec(args.json)
    if args.loop == "uvloop":
        uvloop = importlib.import_module("uvloop")
        uvloop.run(serve(codec))
    else:
        asyncio.run(serve(codec))
    return 0


if __name__ == "__main__":
    sys.exit(main())
