"""Alert rules for the router itself (deploy/prometheus/rules.yml): checked and unit tested.

`promtool` (Debian package `prometheus`) checks the rule file and runs its unit tests,
deploy/prometheus/rules_test.yml, in which every alert has a case where it fires and one where it
must not. Without promtool those two are skipped locally and fail in CI. The other tests read the
files only: every alert is labelled and annotated, every metric it reads exists, and the dead man's
switch's premise holds (the router counts Alertmanager's Watchdog without paging on it wrongly).
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiohttp import web
from pytest_aiohttp import AiohttpClient

from receiver.web.app import create_app
from tests.helpers import NOW, ROOT, dry_run_router, fixture, metric, printed, require_tool

RULES = ROOT / "deploy" / "prometheus" / "rules.yml"
RULES_TEST = ROOT / "deploy" / "prometheus" / "rules_test.yml"
# Series names in PromQL (a selector's labels are in braces, so they never match).
METRIC_NAME = re.compile(r"\boncall_router_[a-z_]+\b")
SEVERITIES = {"critical", "warning"}


def exported_metric_names() -> set[str]:
    """Every sample name the router's /metrics can show (histogram `_bucket`s, `_total`s…)."""
    service, _ = dry_run_router()
    return {
        sample.name for family in service.metrics.registry.collect() for sample in family.samples
    }


def load(path: Path) -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load(path.read_text())
    return document


def alerting_rules() -> Iterator[dict[str, Any]]:
    for group in load(RULES)["groups"]:
        for rule in group["rules"]:
            if "alert" in rule:
                yield rule


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    binary = require_tool("promtool", "prometheus")
    return subprocess.run(
        [binary, *args], cwd=ROOT, capture_output=True, text=True, timeout=60, check=False
    )


def test_promtool_check_rules() -> None:
    """`promtool check rules` accepts the file (syntax, PromQL, templates, no duplicate rules)."""
    result = promtool("check", "rules", str(RULES.relative_to(ROOT)))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout, result.stdout


def test_promtool_unit_tests() -> None:
    """`promtool test rules`: each alert fires on its series, with its labels and annotations."""
    result = promtool("test", "rules", str(RULES_TEST.relative_to(ROOT)))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout + result.stderr, result.stdout + result.stderr


def test_every_alert_is_labelled_and_annotated() -> None:
    """severity and component labels; summary, description and a runbook link per alert."""
    names = set()
    for rule in alerting_rules():
        name = rule["alert"]
        names.add(name)
        assert re.fullmatch(r"OncallRouter[A-Za-z]+", name), name
        assert rule["labels"]["severity"] in SEVERITIES, name
        assert rule["labels"]["component"] == "oncall-router", name
        annotations = rule["annotations"]
        assert set(annotations) == {"summary", "description", "runbook_url"}, name
        assert all(annotations[key].strip() for key in annotations), name
        assert annotations["runbook_url"].endswith(f"/{name}"), name
    assert names == {
        "OncallRouterDown",
        "OncallRouterWebhooksNotArriving",
        "OncallRouterConfigReloadFailed",
        "OncallRouterFailedToSendNotifications",
        "OncallRouterNotificationsLost",
        "OncallRouterWebhookRetries",
        "OncallRouterShedding",
        "OncallRouterWebhooksRejected",
        "OncallRouterWebhooksSlow",
        "OncallRouterStoreUnavailable",
        "OncallRouterAlertsUnrouted",
        "OncallRouterAlertsSeverityDefaulted",
        "OncallRouterAcknowledgementsUnavailable",
        "OncallRouterPagesFailingAtCarrier",
    }


def test_every_alert_is_tested_firing_and_quiet() -> None:
    """rules_test.yml has, for every alert and each of its severities, a firing case, and for
    every alert a case where it must stay quiet."""
    firing: set[tuple[str, str]] = set()
    quiet: set[str] = set()
    for group in load(RULES_TEST)["tests"]:
        for case in group["alert_rule_test"]:
            if case["exp_alerts"]:
                firing |= {
                    (case["alertname"], a["exp_labels"]["severity"]) for a in case["exp_alerts"]
                }
            else:
                quiet.add(case["alertname"])
    rules = {(rule["alert"], rule["labels"]["severity"]) for rule in alerting_rules()}
    assert rules <= firing, f"never seen firing: {sorted(rules - firing)}"
    assert {name for name, _ in rules} <= quiet, "some alert has no case where it stays quiet"


def test_rules_and_their_tests_use_only_exported_metrics() -> None:
    """A renamed metric would leave an alert that silently never fires: every name must exist."""
    exported = exported_metric_names()
    used = {name for rule in alerting_rules() for name in METRIC_NAME.findall(rule["expr"])}
    assert used, "no router metric found in the rules"
    assert used <= exported, f"not exported by the router: {sorted(used - exported)}"
    series = {
        series["series"].split("{", 1)[0]
        for group in load(RULES_TEST)["tests"]
        for series in group["input_series"]
    }
    assert series - {"up"} <= exported, f"not exported: {sorted(series - {'up'} - exported)}"


def watchdog_payload() -> dict[str, Any]:
    """Alertmanager's webhook for kube-prometheus's Watchdog (`severity: none`, always firing)."""
    body: dict[str, Any] = fixture("alertmanager-firing-critical.json")
    alert = dict(body["alerts"][0])
    alert["labels"] = {"alertname": "Watchdog", "severity": "none", "prometheus": "monitoring/k8s"}
    alert["annotations"] = {"summary": "An alert that should always be firing."}
    alert["fingerprint"] = "e0a0d2a2c2b9f0a1"
    body.update(
        alerts=[alert],
        groupLabels={"alertname": "Watchdog"},
        commonLabels=alert["labels"],
        commonAnnotations=alert["annotations"],
        groupKey='{}/{alertname="Watchdog"}:{alertname="Watchdog"}',
        truncatedAlerts=0,
    )
    return body


@pytest.mark.parametrize(
    "now",
    [NOW, datetime(2026, 3, 15, 3, 0, tzinfo=UTC)],
    ids=["business-hours", "sunday-night"],
)
async def test_watchdog_is_counted_for_the_dead_mans_switch(
    aiohttp_client: AiohttpClient, now: datetime
) -> None:
    """The premise of OncallRouterWebhooksNotArriving: with the shipped routing.yaml, every
    Watchdog webhook counts in alerts_received_total{source="alertmanager"} at any hour, as low,
    neither defaulted (that would fire OncallRouterAlertsSeverityDefaulted all day) nor unrouted.
    It costs one Slack post in business hours (re-sends are deduplicated) and nothing at night."""
    service, out = dry_run_router()
    service.clock = lambda: now
    client = await aiohttp_client(create_app(service))
    for _ in range(2):  # Alertmanager's re-sends count too
        response = await client.post("/webhooks/alertmanager", json=watchdog_payload())
        assert response.status == web.HTTPOk.status_code, await response.text()
    labels = {"source": "alertmanager", "severity": "low", "status": "firing"}
    assert metric(service, "oncall_router_alerts_received_total", labels) == 2
    assert (
        metric(service, "oncall_router_alerts_severity_defaulted_total", {"source": "alertmanager"})
        == 0
    )
    unrouted = {"source": "alertmanager", "severity": "low"}
    assert metric(service, "oncall_router_alerts_unrouted_total", unrouted) == 0
    posted = [(line["channel"], line["to"]) for line in printed(out)]
    assert posted == ([("slack", "alerts")] if now == NOW else [])
