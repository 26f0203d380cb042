"""The `oncall-router` command: serve, check, route, who."""

from __future__ import annotations

import argparse
import errno
import json
import logging
import os
import socket
import sys
from collections.abc import Mapping, Sequence
from datetime import tzinfo
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from prometheus_client import CollectorRegistry

from receiver import __version__
from receiver.channels.base import Sender
from receiver.channels.console import dry_run_line
from receiver.channels.registry import dry_run_senders, vendor_senders
from receiver.cli import event_loop
from receiver.cli.commands import register_all
from receiver.cli.tools import UsageError, parse_span, parse_time
from receiver.config.load import load_config
from receiver.config.settings import Settings, SettingsError, load_settings
from receiver.config.types import Config
from receiver.config.yaml_file import ConfigError
from receiver.metrics import Metrics
from receiver.model import Channel
from receiver.routing.coverage import gaps
from receiver.routing.plan import Plan, plan
from receiver.sources import PayloadError, alertmanager, sentry
from receiver.store.base import Store
from receiver.web.app import create_app
from receiver.web.logs import Redactor, setup_logging
from receiver.web.reload import Reloader
from receiver.web.server import serve
from receiver.web.service import Service

log = logging.getLogger("receiver.cli")


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        code: int = args.func(args)
        # Inside the try: output still buffered would otherwise fail at exit, with a traceback.
        sys.stdout.flush()
    except BrokenPipeError:
        # The reader went away (`who | head`): stop quietly, as the Python docs' "Note on
        # SIGPIPE" recommends. stdout now points at devnull so the flush at exit cannot fail.
        _stdout_to_devnull()
        return 1
    except ConfigError as e:
        for problem in e.problems:
            print(problem, file=sys.stderr)
        print(f"{len(e.problems)} problem(s) found", file=sys.stderr)
        return 1
    except (SettingsError, PayloadError, UsageError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return code


def _stdout_to_devnull() -> None:
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, sys.stdout.fileno())
    except (AttributeError, OSError, ValueError):
        pass  # not backed by a file descriptor (a test's capture): nothing flushes to a pipe
    finally:
        os.close(devnull)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="oncall-router",
        description="Turns Alertmanager and Sentry webhooks into pages.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(required=True, metavar="COMMAND")

    serve = sub.add_parser("serve", help="run the HTTP service")
    _config_arg(serve)
    serve.add_argument("--listen", default="0.0.0.0:9095", help="host:port (default %(default)s)")
    serve.add_argument(
        "--reload-interval",
        type=float,
        default=5.0,
        metavar="SECONDS",
        help="check the routing file for changes this often; 0 = only on SIGHUP (default 5)",
    )
    serve.add_argument(
        "--shutdown-delay",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="after SIGTERM, answer /-/ready with 503 but keep serving this long (default 0)",
    )
    serve.add_argument(
        "--dry-run",
        action="store_true",
        help="send nothing; print each would-be message as a JSON line on stdout",
    )
    serve.add_argument(
        "--loop",
        choices=event_loop.LOOPS,
        default=event_loop.DEFAULT,
        help="event loop: asyncio (default) or uvloop (pip install 'oncall-router[fast]')",
    )
    serve.set_defaults(func=_serve)

    check = sub.add_parser("check", help="validate a routing file; exit 1 listing every problem")
    _config_arg(check)
    check.add_argument(
        "--horizon",
        metavar="DURATION",
        help="look this far ahead for gaps in on-call cover, e.g. 13w or 90d (default: one full "
        "cycle of the longest rotation, at least 4w)",
    )
    check.add_argument("--at", help="ISO 8601 time the look-ahead starts (default: now)")
    check.set_defaults(func=_check)

    route = sub.add_parser("route", help="show what a payload would do, as JSON; sends nothing")
    _config_arg(route)
    route.add_argument("payload", type=Path, help="Alertmanager or Sentry webhook body (JSON)")
    route.add_argument("--at", help="ISO 8601 time to route at (default: now)")
    route.add_argument(
        "--resource",
        help="Sentry-Hook-Resource, if the body is from Sentry (default: guessed from the body)",
    )
    route.set_defaults(func=_route)

    register_all(sub, _config_arg)
    return parser


def _config_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        type=Path,
        default=Path("routing.yaml"),
        help="routing file (default %(default)s)",
    )


def _check(args: argparse.Namespace) -> int:
    horizon = None if args.horizon is None else parse_span(args.horizon, "--horizon")
    config = load_config(args.config, os.environ)
    for warning in sorted(config.warnings, key=lambda w: w.line):
        print(f"warning: {warning}", file=sys.stderr)
    seen: set[str] = set()
    for team in config.all_teams():
        where = f"teams.{team.team}." if team.team else ""
        for gap in gaps(team, parse_time(args.at, team.timezone), horizon):
            line = f"warning: {args.config}: {where}{gap}"
            if line not in seen:  # a rotation of the file's top is every team's
                seen.add(line)
                print(line, file=sys.stderr)
    people = f"{len(config.people)} people"
    if not config.teams:
        print(f"{args.config}: OK ({len(config.routes)} routes, {people})")
        return 0
    teams = ", ".join(f"{t.team} {len(t.routes)} routes" for t in config.teams)
    print(
        f"{args.config}: OK ({len(config.teams)} teams: {teams}; default {config.team}; {people})"
    )
    return 0


def _route(args: argparse.Namespace) -> int:
    config = load_config(args.config, os.environ)
    try:
        body = json.loads(args.payload.read_bytes())
    except (OSError, ValueError) as e:
        raise UsageError(f"cannot read {args.payload}: {e}") from None
    group = _parse_any(body, args.resource, config)
    if group is None:
        print(json.dumps({"source": "sentry", "ignored": True}))
        return 0
    result = plan(config, group, parse_time(args.at, config.timezone))
    print(json.dumps(plan_json(result, config.timezone), indent=2, ensure_ascii=False))
    return 0


def _parse_any(body: Any, resource: str | None, config: Config) -> Any:
    if isinstance(body, dict) and "alerts" in body:
        return alertmanager.parse(body)
    if resource is None and isinstance(body, dict) and isinstance(body.get("data"), dict):
        data = body["data"]
        resource = next((r for r in ("metric_alert", "issue") if r in data), "event_alert")
    return sentry.parse(resource, body, config.sentry.issues)


def plan_json(result: Plan, tz: tzinfo) -> dict[str, Any]:
    group = result.group
    return {
        "source": group.source.value,
        "group_key": group.group_key,
        "status": group.status.value,
        "truncated_alerts": group.truncated_alerts,
        "alerts": [
            {
                "fingerprint": r.alert.fingerprint,
                "status": r.alert.status.value,
                "labels": dict(r.alert.labels),
                **({"team": r.team} if r.team else {}),
                "severity": r.severity.severity.value,
                "severity_reason": r.severity.reason,
                "routes": list(r.routes),
            }
            for r in result.alerts
        ],
        "notifications": [
            {**dry_run_line(n, n.timezone or tz), "key": n.key} for n in result.notifications
        ],
        # `route` remembers nothing: what it shows is the group's first page.
        "escalation": (
            f"counts from the first page ({result.started.astimezone(tz).isoformat()}), not from "
            "startsAt: these are the first level's messages; `simulate` shows the ladder"
            if result.started is not None
            else ""
        ),
    }


def _listen(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise UsageError(f"--listen {text!r}: expected host:port")
    return host.strip("[]"), int(port)


def required_secrets(config: Config, settings: Settings) -> list[str]:
    """Environment variables a real (not dry-run) service needs for this routing file."""
    targets = [
        (team, target)
        for team in config.all_teams()
        for route in team.routes
        for level in range(len(route.escalation) + 1)
        for target in route.level_targets(level)
    ]
    kinds = {t.kind.value for _, t in targets}
    web_api = any(
        t.kind.value == "slack" and (t.ref_kind != "channel" or team.slack[t.ref].channel)
        for team, t in targets
    )
    needed = {
        "SLACK_BOT_TOKEN": web_api,
        "TWILIO_ACCOUNT_SID": bool(kinds & {"sms", "call"}),
        "TWILIO_AUTH_TOKEN": bool(kinds & {"sms", "call"}),
        "TWILIO_FROM": bool(kinds & {"sms", "call"}),
        "SENDGRID_API_KEY": "email" in kinds,
        "SENDGRID_FROM": "email" in kinds,
    }
    return [name for name, need in needed.items() if need and not getattr(settings, name.lower())]


def _log_acknowledgement(settings: Settings) -> None:
    """Say at start-up whether pages can be acknowledged, and what is missing if not."""
    needed = ("ACK_SECRET", "ALERTMANAGER_URL", "PUBLIC_URL")
    missing = [name for name in needed if not getattr(settings, name.lower())]
    if missing:
        # A valid choice (no acknowledgement wanted), so information rather than a warning.
        log.info(
            "acknowledgement is off: pages carry no ACK code, key prompt, link or button",
            extra={"missing": missing},
        )
        return
    buttons = "on" if settings.slack_signing_secret else "off (set SLACK_SIGNING_SECRET)"
    log.info("acknowledgement is on", extra={"slack_buttons": buttons})


def _state_store(settings: Settings, dry_run: bool) -> Store | None:
    """Redis when `REDIS_URL` is set (not in a dry run: nothing leaves the process there)."""
    if settings.redis_url and not dry_run:
        # Imported only here: the Redis client is ~7 MiB of a router that keeps its store in the
        # process (RSS after `python -m bench`'s soak: 97.5 MiB with it loaded).
        from receiver.store.redis import RedisStore

        where = urlsplit(settings.redis_url)
        log.info(
            "shared store: Redis; replicas share claims, spells and pacing",
            extra={"redis_host": where.hostname or where.path, "tls": where.scheme == "rediss"},
        )
        return RedisStore(settings.redis_url)
    log.info(
        "shared store: in this process; run one replica, or set REDIS_URL for several",
        extra={"dry_run": dry_run},
    )
    return None


def _serve(args: argparse.Namespace) -> int:
    loop_factory = event_loop.loop_factory(args.loop)
    settings = load_settings(os.environ)
    redactor = Redactor(settings.secrets)
    setup_logging(settings.log_level, redactor)
    host, port = _listen(args.listen)
    config = _serving_config(args.config, settings, dry_run=args.dry_run)
    redactor.add(config.secrets)
    for warning in config.warnings:
        log.warning("routing file", extra={"problem": str(warning)})
    _log_acknowledgement(settings)
    metrics = Metrics(CollectorRegistry())
    metrics.config_reload_success.set(1)
    metrics.config_reload_time.set_to_current_time()
    service = Service(
        config,
        settings,
        metrics,
        dry_run_senders(config.timezone),
        args.dry_run,
        state_store=_state_store(settings, args.dry_run),
    )

    # Reads router.config when called, so a reload rebuilds senders for the new file.
    def senders(session: aiohttp.ClientSession) -> Mapping[Channel, Sender]:
        if args.dry_run:
            return dry_run_senders(service.config.timezone)
        return vendor_senders(session, settings, service.config)

    app = create_app(service, senders)
    reloader = Reloader(
        args.config, service, os.environ, redactor, secrets_required=not args.dry_run
    )
    log.info("event loop", extra={"loop": args.loop})
    try:
        event_loop.run(
            serve(
                app,
                service,
                host,
                port,
                reloader=reloader,
                reload_interval=args.reload_interval,
                shutdown_delay=args.shutdown_delay,
            ),
            loop_factory,
        )
    except OSError as e:
        if not _is_listen_error(e):
            raise
        # An operator's mistake (port taken, no such address), not a bug: one line, no traceback.
        reason = os.strerror(e.errno) if e.errno in _LISTEN_ERRNOS else e.strerror or str(e)
        print(f"error: cannot listen on {args.listen}: {reason.lower()}", file=sys.stderr)
        return 1
    return 0


# Errors binding the listening socket. asyncio keeps the errno when it rewords the message.
_LISTEN_ERRNOS = frozenset({errno.EADDRINUSE, errno.EADDRNOTAVAIL, errno.EACCES})


def _is_listen_error(e: OSError) -> bool:
    return isinstance(e, socket.gaierror) or e.errno in _LISTEN_ERRNOS


def _serving_config(path: Path, settings: Settings, *, dry_run: bool) -> Config:
    """The routing file for `serve`; for real serving, every missing secret is named at once.

    Secrets come from two places: `${VAR}` references in the routing file, and the vendor
    credentials its routes need from the environment. Reporting only one kind makes the
    operator go round twice, so a file whose only problems are missing secrets is read again
    with them as warnings, to learn which vendor credentials its routes need as well.
    """
    if dry_run:
        return load_config(path, os.environ)
    try:
        config = load_config(path, os.environ, secrets_required=True)
        unset: tuple[str, ...] = ()
    except ConfigError as strict:
        try:
            config = load_config(path, os.environ)
        except ConfigError:
            raise strict from None  # the file has other problems: list them all, as check does
        unset = tuple(str(p) for p in strict.problems)
    vendor = required_secrets(config, settings)
    if unset or vendor:
        lines = [*unset, *(f"environment variable {name} is not set" for name in vendor)]
        raise UsageError(
            f"{len(lines)} secret(s) missing for serve (set them, or use --dry-run):\n  "
            + "\n  ".join(lines)
        )
    return config
