"""The shipped Alertmanager config is what `alertmanager-config` prints; Alertmanager takes it."""

from __future__ import annotations

import subprocess

import pytest

from receiver.cli.main import main
from tests.helpers import ROOT, require_tool

SHIPPED = ROOT / "deploy" / "alertmanager" / "alertmanager.yml"


def test_shipped_config_matches_the_routing_file(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Regenerate with: oncall-router alertmanager-config --config routing.yaml > that file."""
    monkeypatch.chdir(ROOT)
    assert main(["alertmanager-config", "--config", "routing.yaml"]) == 0
    assert capsys.readouterr().out == SHIPPED.read_text(), "deploy/alertmanager is stale"


def test_amtool_accepts_the_shipped_config() -> None:
    """Alertmanager 0.25's own validator accepts it as a whole config file."""
    result = subprocess.run(
        [require_tool("amtool"), "check-config", str(SHIPPED)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout
