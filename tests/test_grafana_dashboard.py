"""The Grafana dashboard (deploy/grafana/oncall-router.json) against real data.

The live tests start the real Prometheus (Debian's `prometheus`, 2.42), scraping every second a real
`oncall-router serve --dry-run` (pacing off) that has handled the fixtures and some bad requests,
then run every query of every panel through Prometheus's HTTP API: each must succeed and return
data. The same Prometheus loads deploy/prometheus/rules.yml and must evaluate every rule cleanly.
Without `prometheus` they are skipped locally and fail in CI; the whole module stays within
`BUDGET` seconds and both processes are always stopped, their logs printed on any failure.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import re
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any

import pytest
import yaml

from receiver.metrics import CALL_RETRY_OUTCOMES, STORE_OPS, VENDOR_STATUSES
from tests.helpers import FIXTURES, ROOT, ROUTING, fixture_bytes, require_tool
from tests.test_prometheus_rules import (
    METRIC_NAME,
    RULES,
    alerting_rules,
    exported_metric_names,
    watchdog_payload,
)

DASHBOARD = ROOT / "deploy" / "grafana" / "oncall-router.json"
JOB = "oncall-router"
BUDGET = 60.0  # seconds for the whole live part: both processes, traffic, scrapes and queries
SCRAPES_AFTER_TRAFFIC = 3
# Grafana's built-in variables, as Grafana would fill them for a short time range.
BUILTINS = {"__rate_interval": "1m", "__interval": "15s", "__range": "1h", "__range_s": "3600"}
VARIABLE = re.compile(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)")
SECRETS = (
    "RECEIVER_AUTH_TOKEN",
    "SENTRY_CLIENT_SECRET",
    "SENTRY_LEGACY_TOKEN",
    "SLACK_BOT_TOKEN",
    "SLACK_SIGNING_SECRET",
    "SLACK_ALERTS_WEBHOOK_URL",
    "TWILIO_ACCOUNT_SID",
    "TWILIO_AUTH_TOKEN",
    "TWILIO_FROM",
    "SENDGRID_API_KEY",
    "SENDGRID_FROM",
    "ALERTMANAGER_URL",
    "PUBLIC_URL",
    "REDIS_URL",
)
JSON = {"Content-Type": "application/json"}
SENTRY_FIXTURES = {
    "sentry-event-alert-triggered.json": "event_alert",
    "sentry-issue-created.json": "issue",
    "sentry-metric-alert-critical.json": "metric_alert",
    "sentry-metric-alert-resolved.json": "metric_alert",
}


# --- the dashboard as data ---------------------------------------------------------------------


def dashboard() -> dict[str, Any]:
    document: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return document


def panels(board: dict[str, Any]) -> list[dict[str, Any]]:
    """Every panel but rows, including those inside collapsed rows."""
    out = []
    for panel in board["panels"]:
        out.extend(panel.get("panels", []))
        if panel["type"] != "row":
            out.append(panel)
    return out


def queries(board: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(panel title, refId, expr) of every target of every panel."""
    return [
        (panel["title"], target["refId"], target["expr"])
        for panel in panels(board)
        for target in panel["targets"]
    ]


def variables(board: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {variable["name"]: variable for variable in board["templating"]["list"]}


def substitute(expr: str, values: dict[str, str]) -> str:
    """Fill `$name` and `${name}` as Grafana would; an unknown variable is an error."""

    def value(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        if name not in values:
            raise KeyError(f"undefined variable ${name} in {expr!r}")
        return values[name]

    return VARIABLE.sub(value, expr)


def test_dashboard_shape() -> None:
    """Importable (`__inputs`, schemaVersion), every panel on the `${datasource}` variable, with
    `job` and `instance` variables, unique ids, and a layout without overlaps."""
    board = dashboard()
    assert 36 <= board["schemaVersion"] <= 41
    assert board["uid"] == "oncall-router"
    [source] = board["__inputs"]
    assert source["pluginId"] == "prometheus"
    assert source["type"] == "datasource"
    found = variables(board)
    assert found["datasource"]["type"] == "datasource"
    assert found["datasource"]["query"] == "prometheus"
    for name in ("job", "instance"):
        assert found[name]["type"] == "query"
        assert found[name]["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
    ids = [panel["id"] for panel in board["panels"]] + [
        inner["id"] for panel in board["panels"] for inner in panel.get("panels", [])
    ]
    assert len(ids) == len(set(ids))
    titles = [panel["title"] for panel in panels(board)]
    assert len(titles) == len(set(titles))
    cells: set[tuple[int, int]] = set()
    for panel in board["panels"]:
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24, panel["title"]
        mine = {
            (x, y)
            for x in range(grid["x"], grid["x"] + grid["w"])
            for y in range(grid["y"], grid["y"] + grid["h"])
        }
        assert not cells & mine, f"{panel['title']} overlaps another panel"
        cells |= mine
    for panel in panels(board):
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        assert panel["targets"], panel["title"]
        refs = [target["refId"] for target in panel["targets"]]
        assert len(refs) == len(set(refs)), panel["title"]
        for target in panel["targets"]:
            assert target["datasource"] == panel["datasource"], panel["title"]
            assert target["expr"].strip(), panel["title"]


def test_dashboard_uses_every_metric_and_only_those() -> None:
    """Each query reads only metrics the router exports (plus Prometheus's `up`), and every
    metric family the router exports appears on some panel."""
    exported = exported_metric_names()
    used = {name for _, _, expr in queries(dashboard()) for name in METRIC_NAME.findall(expr)}
    assert used <= exported, f"not exported by the router: {sorted(used - exported)}"
    families = {
        re.sub(r"_(bucket|count|sum)$", "", name)
        for name in exported
        if not name.endswith("_created")
    }
    covered = {re.sub(r"_(bucket|count|sum)$", "", name) for name in used}
    assert families <= covered, f"on no panel: {sorted(families - covered)}"


def test_response_targets_are_drawn() -> None:
    """Time from alert start to page is shown against each severity's response target."""
    board = dashboard()
    exprs = " ".join(expr for _, _, expr in queries(board))
    for severity, seconds in (("critical", 900), ("high", 3600), ("medium", 14400)):
        assert f'label_replace(vector({seconds}), "severity", "{severity}"' in exprs
        [panel] = [p for p in panels(board) if p["title"].startswith(severity.capitalize() + ":")]
        steps = panel["fieldConfig"]["defaults"]["thresholds"]["steps"]
        assert seconds in [step["value"] for step in steps]
        assert panel["fieldConfig"]["defaults"]["custom"]["thresholdsStyle"]["mode"] != "off"


# --- the live stack ----------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class Deadline:
    def __init__(self, seconds: float) -> None:
        self.end = time.monotonic() + seconds

    def left(self) -> float:
        return self.end - time.monotonic()

    def wait_for(self, what: str, check: Callable[[], bool], status: Callable[[], str]) -> None:
        while not check():
            if self.left() <= 0:
                pytest.fail(f"out of time ({BUDGET:g}s budget) waiting for {what}; {status()}")
            time.sleep(0.2)


@dataclasses.dataclass
class Process:
    name: str
    args: list[str]
    log_path: Path
    env: dict[str, str] | None = None
    process: subprocess.Popen[bytes] | None = None
    log_file: IO[bytes] | None = None

    def start(self) -> None:
        self.log_file = self.log_path.open("wb")
        self.process = subprocess.Popen(
            self.args, cwd=ROOT, env=self.env, stdout=self.log_file, stderr=subprocess.STDOUT
        )

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def log(self) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return f"--- {self.name} log ---\n{text or '(empty)'}"

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
        if self.log_file is not None:
            self.log_file.close()


def request(
    url: str, body: bytes | None = None, headers: dict[str, str] | None = None, timeout: float = 5
) -> tuple[int, bytes]:
    """One HTTP request; the status and body, 4xx and 5xx included."""
    req = urllib.request.Request(
        url, data=body, headers=headers or {}, method="POST" if body is not None else "GET"
    )
    try:
        with urllib.request.urlopen(req, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as e:
        with e:
            return e.code, e.read()


def answers(url: str) -> bool:
    with contextlib.suppress(OSError):
        return request(url, timeout=1)[0] == 200
    return False


@dataclasses.dataclass
class Stack:
    service: Process
    prometheus: Process
    router_url: str
    prometheus_url: str
    instance: str
    deadline: Deadline

    def api(self, path: str, **params: str) -> Any:
        url = f"{self.prometheus_url}/api/v1/{path}?{urllib.parse.urlencode(params)}"
        status, body = request(url, timeout=max(1.0, min(10.0, self.deadline.left())))
        document = json.loads(body)
        assert status == 200, (url, document)
        assert document["status"] == "success", (url, document)
        return document["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        data = self.api("query", query=expr)
        if data["resultType"] in ("scalar", "string"):
            return [{"metric": {}, "value": data["result"]}]
        result: list[dict[str, Any]] = data["result"]
        return result

    def values(self) -> dict[str, str]:
        return {"datasource": "prometheus", "job": JOB, "instance": self.instance, **BUILTINS}

    @contextlib.contextmanager
    def logs_on_failure(self) -> Iterator[None]:
        try:
            yield
        except BaseException:
            print(self.service.log())
            print(self.prometheus.log())
            raise


def routing_without_pacing(path: Path) -> None:
    """The shipped routing file with `delivery.rate_limits` off, so no send waits on another."""
    document = yaml.safe_load(ROUTING.read_text())
    document["delivery"]["rate_limits"] = {"slack": "0s", "sms": "0s", "call": "0s", "email": "0s"}
    path.write_text(yaml.safe_dump(document, sort_keys=False))


def fresh_critical_payload() -> bytes:
    """The critical fixture as if its alerts had started a minute ago: paged within target."""
    body: dict[str, Any] = json.loads(fixture_bytes("alertmanager-firing-critical.json"))
    started = (datetime.now(UTC) - timedelta(minutes=1)).isoformat().replace("+00:00", "Z")
    for n, alert in enumerate(body["alerts"]):
        alert.update(startsAt=started, fingerprint=f"f7e5000000000{n:03d}")
    body["groupKey"] = '{}:{alertname="FreshHighErrorRate"}'
    return json.dumps(body).encode()


def send_traffic(router_url: str) -> list[str]:
    """Every fixture at its endpoint, a duplicate, the Watchdog and bad requests; returns the
    mismatches between the status each got and the one expected."""
    sends: list[tuple[str, bytes, dict[str, str], int]] = []
    for file in sorted(FIXTURES.glob("alertmanager-*.json")):
        sends.append(("/webhooks/alertmanager", file.read_bytes(), JSON, 200))
    sends.append(  # an Alertmanager re-send: deduplicated
        ("/webhooks/alertmanager", fixture_bytes("alertmanager-firing-critical.json"), JSON, 200)
    )
    sends.append(("/webhooks/alertmanager", json.dumps(watchdog_payload()).encode(), JSON, 200))
    sends.append(("/webhooks/alertmanager", fresh_critical_payload(), JSON, 200))
    sentry = {file.name for file in FIXTURES.glob("sentry-*.json")}
    assert sentry == {*SENTRY_FIXTURES, "sentry-legacy-plugin.json"}, "a fixture is not posted"
    for name, resource in SENTRY_FIXTURES.items():
        headers = JSON | {"Sentry-Hook-Resource": resource}
        sends.append(("/webhooks/sentry", fixture_bytes(name), headers, 202))
    sends.append(
        ("/webhooks/sentry/legacy/x", fixture_bytes("sentry-legacy-plugin.json"), JSON, 202)
    )
    sends += [
        ("/webhooks/alertmanager", b"{not json", JSON, 400),
        ("/webhooks/alertmanager", b'{"alerts": "nope"}', JSON, 400),
        ("/webhooks/alertmanager", b"hello", {"Content-Type": "text/plain"}, 415),
        ("/webhooks/sentry", b"[1, 2", JSON | {"Sentry-Hook-Resource": "issue"}, 400),
    ]
    wrong = []
    for path, body, headers, expected in sends:
        status, answer = request(router_url + path, body, headers)
        if status != expected:
            wrong.append(f"{path}: {status} (expected {expected}): {answer[:300]!r}")
    return wrong


def scrapes(stack: Stack) -> int:
    result = stack.query(f'count_over_time(up{{job="{JOB}"}}[5m])')
    return int(float(result[0]["value"][1])) if result else 0


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    binary = require_tool("prometheus", "prometheus")
    deadline = Deadline(BUDGET)
    workdir = tmp_path_factory.mktemp("grafana")
    routing = workdir / "routing.yaml"
    routing_without_pacing(routing)
    router_port, prometheus_port = free_port(), free_port()
    instance = f"127.0.0.1:{router_port}"
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in SECRETS and key.removesuffix("_FILE") not in SECRETS
    }
    service = Process(
        "oncall-router",
        [
            sys.executable,
            "-m",
            "receiver",
            "serve",
            "--config",
            str(routing),
            "--dry-run",
            "--listen",
            instance,
            "--reload-interval",
            "0",
        ],
        workdir / "router.log",
        env=env | {"LOG_LEVEL": "info"},
    )
    config = {
        "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(RULES)],
        "scrape_configs": [{"job_name": JOB, "static_configs": [{"targets": [instance]}]}],
    }
    (workdir / "prometheus.yml").write_text(yaml.safe_dump(config))
    prometheus = Process(
        "prometheus",
        [
            binary,
            f"--config.file={workdir / 'prometheus.yml'}",
            f"--storage.tsdb.path={workdir / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{prometheus_port}",
            "--log.level=warn",
        ],
        workdir / "prometheus.log",
    )
    live = Stack(
        service,
        prometheus,
        f"http://{instance}",
        f"http://127.0.0.1:{prometheus_port}",
        instance,
        deadline,
    )
    try:
        with live.logs_on_failure():
            service.start()
            prometheus.start()

            def status() -> str:
                return f"router alive: {service.alive()}, prometheus alive: {prometheus.alive()}"

            def both_ready() -> bool:
                if not (service.alive() and prometheus.alive()):
                    pytest.fail(f"a process exited early; {status()}")
                return answers(f"{live.router_url}/-/ready") and answers(
                    f"{live.prometheus_url}/-/ready"
                )

            deadline.wait_for("both processes to be ready", both_ready, status)
            deadline.wait_for("the first scrape", lambda: scrapes(live) >= 1, status)
            wrong = send_traffic(live.router_url)
            assert not wrong, "\n".join(wrong)
            after = scrapes(live) + SCRAPES_AFTER_TRAFFIC
            deadline.wait_for(
                f"{SCRAPES_AFTER_TRAFFIC} scrapes after the traffic",
                lambda: scrapes(live) >= after,
                lambda: f"{scrapes(live)} scrapes so far; {status()}",
            )
        yield live
    finally:
        prometheus.stop()
        service.stop()


def finite(result: list[dict[str, Any]]) -> list[float]:
    return [v for v in (float(r["value"][1]) for r in result) if math.isfinite(v)]


def test_every_panel_query_returns_data(stack: Stack) -> None:
    """Every target of every panel, variables filled in, succeeds and returns series."""
    with stack.logs_on_failure():
        empty = []
        for title, ref, expr in queries(dashboard()):
            if not stack.query(substitute(expr, stack.values())):
                empty.append(f"{title} [{ref}]: {expr}")
        assert not empty, "queries without data:\n" + "\n".join(empty)


# What the traffic must show, by panel title and refId: a predicate over each result.
SHOWN: dict[tuple[str, str], Callable[[list[dict[str, Any]]], bool]] = {
    ("Router up", "A"): lambda r: finite(r) == [1.0],
    ("Routing file loaded", "A"): lambda r: finite(r) == [1.0],
    ("Alerts from Alertmanager, last 15 min", "A"): lambda r: finite(r)[0] > 0,
    ("Webhooks by source and outcome", "A"): lambda r: any(
        v > 0 and x["metric"]["outcome"] == "accepted"
        for x in r
        for v in finite([x])
        if x["metric"]["source"] == "sentry"
    ),
    ("Rejected (4xx) and retried (503) webhooks", "A"): lambda r: (
        {x["metric"]["outcome"] for x in r if finite([x]) and finite([x])[0] > 0}
        >= {"invalid", "unsupported_media_type"}
    ),
    ("Webhook handling latency", "B"): lambda r: len(finite(r)) == 2,
    ("Notifications delivered and failed, by channel", "A"): lambda r: (
        {x["metric"]["channel"] for x in r if finite([x]) and finite([x])[0] > 0}
        == {"slack", "sms", "call", "email"}
    ),
    ("Vendor request latency, by channel", "B"): lambda r: len(finite(r)) == 4,
    ("Retried, deduplicated and rate-limited sends, by channel", "B"): lambda r: any(
        v > 0 for v in finite(r)
    ),
    # No shared store (REDIS_URL unset): every op is on the panel from zero, none failed, and a
    # single replica never waits for another's claim.
    ("Shared store errors", "A"): lambda r: (
        {x["metric"]["op"] for x in r} == set(STORE_OPS) and finite(r) == [0.0] * len(r)
    ),
    ("Shared store errors", "B"): lambda r: (
        {x["metric"]["outcome"] for x in r} == {"delivered", "released", "timeout"}
        and finite(r) == [0.0] * len(r)
    ),
    ("Alert start to page vs response target", "A"): lambda r: bool(finite(r)),
    # The fresh critical group was paged within 15 minutes, the fixtures' old ones were not.
    ("Alert start to page vs response target", "D"): lambda r: any(
        0 < v < 1 for x in r for v in finite([x]) if x["metric"]["severity"] == "critical"
    ),
    ("Alert start to page vs response target", "C"): lambda r: (
        sorted(finite(r)) == [900, 3600, 14400]
    ),
    # Escalation counts from the first page, so traffic of a few seconds reaches no step: the
    # panel shows the pre-created series, at zero.
    ("Escalations by severity and level", "A"): lambda r: (
        {(x["metric"]["severity"], x["metric"]["level"]) for x in r}
        >= {("critical", "1"), ("critical", "2")}
        and not any(finite(r))
    ),
    ("Pages per person (time range)", "A"): lambda r: any(v > 0 for v in finite(r)),
    # The dry run sends nothing, so no vendor reports: every series is there from zero.
    ("Vendor delivery reports, by channel and status", "A"): lambda r: (
        {(x["metric"]["channel"], x["metric"]["status"]) for x in r}
        == {(c.value, s) for c, statuses in VENDOR_STATUSES.items() for s in statuses}
        and not any(finite(r))
    ),
    ("Pages refused at the carrier, per person", "A"): lambda r: (
        {("alice", "sms"), ("alice", "call"), ("alice", "email")}
        <= {(x["metric"]["person"], x["metric"]["channel"]) for x in r}
        and not any(finite(r))
    ),
    ("Unanswered page calls, by what followed", "A"): lambda r: (
        {x["metric"]["outcome"] for x in r} == set(CALL_RETRY_OUTCOMES) and not any(finite(r))
    ),
    ("On call now", "A"): lambda r: (
        {x["metric"]["rotation"] for x in r} == {"primary", "secondary"}
    ),
}


def test_traffic_shows_on_the_dashboard(stack: Stack) -> None:
    """The posted traffic is visible: sends per channel, latency, pages, escalations, on call."""
    with stack.logs_on_failure():
        by_ref = {(title, ref): expr for title, ref, expr in queries(dashboard())}
        assert set(SHOWN) <= set(by_ref), sorted(set(SHOWN) - set(by_ref))
        wrong = []
        for key, shows in SHOWN.items():
            result = stack.query(substitute(by_ref[key], stack.values()))
            if not shows(result):
                wrong.append(f"{key}: {json.dumps(result)[:600]}")
        assert not wrong, "\n".join(wrong)


def test_variables_resolve(stack: Stack) -> None:
    """The `job` and `instance` variables' label_values() queries list the scraped router."""
    with stack.logs_on_failure():
        found = variables(dashboard())
        expected = {"job": JOB, "instance": stack.instance}
        for name, value in expected.items():
            query = found[name]["query"]
            text = query["query"] if isinstance(query, dict) else query
            match = re.fullmatch(r"label_values\((.+),\s*(\w+)\)", text)
            assert match, text
            selector, label = substitute(match.group(1), stack.values()), match.group(2)
            assert label == name
            assert value in stack.api(f"label/{label}/values", **{"match[]": selector})


def test_alert_rules_evaluate_on_real_metrics(stack: Stack) -> None:
    """Prometheus loads rules.yml and evaluates every rule without error on the router's real
    series; with the Watchdog arriving the dead man's switch is quiet, the router is not down,
    the shared store has no errors, and the bad Alertmanager requests just posted make
    OncallRouterWebhooksRejected pending."""
    with stack.logs_on_failure():

        def rules() -> list[dict[str, Any]]:
            groups = stack.api("rules", type="alert")["groups"]
            return [rule for group in groups for rule in group["rules"]]

        def rejected_pending() -> bool:
            return any(
                rule["name"] == "OncallRouterWebhooksRejected" and rule["state"] == "pending"
                for rule in rules()
            )

        stack.deadline.wait_for(
            "every rule to be evaluated, OncallRouterWebhooksRejected pending",
            lambda: all(rule["health"] != "unknown" for rule in rules()) and rejected_pending(),
            lambda: json.dumps(rules())[:2000],
        )
        loaded = rules()
        assert len(loaded) == len(list(alerting_rules()))
        assert [r for r in loaded if r["health"] != "ok"] == []
        state = {(rule["name"], rule["labels"]["severity"]): rule["state"] for rule in loaded}
        assert state["OncallRouterDown", "critical"] == "inactive"
        assert state["OncallRouterWebhooksNotArriving", "critical"] == "inactive"
        assert state["OncallRouterConfigReloadFailed", "critical"] == "inactive"
        assert state["OncallRouterFailedToSendNotifications", "critical"] == "inactive"
        assert state["OncallRouterWebhooksRejected", "critical"] == "pending"
        assert state["OncallRouterAlertsSeverityDefaulted", "warning"] == "inactive"
        assert state["OncallRouterStoreUnavailable", "warning"] == "inactive"
