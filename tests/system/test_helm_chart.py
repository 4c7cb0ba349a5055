"""The Helm chart, rendered offline by Helm's own engine and checked against Kubernetes' schemas.

helm-python-sdk embeds the Helm v4 Go library, so ``render`` applies values.schema.json and the
templates' ``fail`` calls exactly as ``helm install`` would. kubernetes-validate ships the
Kubernetes JSON schemas; strict mode rejects unknown fields, which catches mis-indented YAML.
The rendered settings are fed to the gateway's own CLI parser, Settings and policy loader, so
the chart cannot drift from the code it deploys.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from helm_python import Chart, HelmRenderError, HelmValuesError, lint

from gateway.cli.main import build_parser
from gateway.cli.serve import exposure_problem
from gateway.settings import Settings
from policies import PolicyHolder

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "helm" / "hybrid-gateway"
VALUE_SETS = Path(__file__).resolve().parents[1] / "helm_values"
# The oldest Kubernetes the chart supports (Chart.yaml kubeVersion) and the newest with schemas.
KUBE_VERSIONS = ("1.25.0", kubernetes_validate.latest_version())
OPERATOR_KINDS = {"ServiceMonitor", "PrometheusRule"}
Manifest = dict[str, Any]


@pytest.fixture(scope="module")
def chart() -> Iterator[Chart]:
    with Chart.load(CHART) as loaded:
        yield loaded


def value_set(name: str) -> dict[str, Any]:
    return yaml.safe_load((VALUE_SETS / f"{name}.yaml").read_text(encoding="utf-8"))


def render(chart: Chart, values: dict[str, Any]) -> list[Manifest]:
    rendered = chart.render(values, name="hg", namespace="ai")
    return [doc for path, text in sorted(rendered.items()) if path.endswith(".yaml")
            for doc in yaml.safe_load_all(text) if doc]


def only(manifests: list[Manifest], kind: str, name: str | None = None) -> Manifest:
    found = [m for m in manifests if m["kind"] == kind and name in (None, m["metadata"]["name"])]
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
    return found[0]


def gateway_container(manifests: list[Manifest]) -> Manifest:
    pod = only(manifests, "Deployment", "hg-hybrid-gateway")["spec"]["template"]["spec"]
    container: Manifest = pod["containers"][0]
    return container


def env_of(container: Manifest) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container.get("env", [])}


def pod_specs(manifests: list[Manifest]) -> list[Manifest]:
    return [m["spec"]["template"]["spec"] for m in manifests if m["kind"] in ("Deployment", "StatefulSet")]


EXPECTED_KINDS = {
    "minimal": ["Deployment", "Service"],
    "embedded": ["Deployment", "PersistentVolumeClaim", "Service"],
    "external": ["Deployment", "PodDisruptionBudget", "Service"],
    "ha": ["ConfigMap", "ConfigMap", "Deployment", "Deployment", "HorizontalPodAutoscaler", "Ingress",
           "NetworkPolicy", "NetworkPolicy", "NetworkPolicy", "PersistentVolumeClaim", "PodDisruptionBudget",
           "PrometheusRule", "Service", "Service", "Service", "ServiceMonitor", "StatefulSet"],
}


@pytest.mark.parametrize("name", sorted(EXPECTED_KINDS))
def test_value_set_renders_valid_manifests(chart: Chart, name: str) -> None:
    report = lint(CHART, value_set(name), strict=True)
    assert report["errors"] == [] and [m for m in report["messages"] if m["severity"] > 1] == []
    manifests = render(chart, value_set(name))
    assert sorted(m["kind"] for m in manifests) == EXPECTED_KINDS[name]
    for manifest in manifests:
        if manifest["kind"] in OPERATOR_KINDS:
            assert manifest["apiVersion"] == "monitoring.coreos.com/v1"
            assert set(manifest) == {"apiVersion", "kind", "metadata", "spec"}
            continue
        for version in KUBE_VERSIONS:
            kubernetes_validate.validate(manifest, version, strict=True)


def test_the_schema_validation_can_fail(chart: Chart) -> None:
    """Guards the test above: a field misplaced by one indent is refused."""
    deployment = only(render(chart, value_set("minimal")), "Deployment")
    deployment["spec"]["template"]["spec"]["containers"][0]["livenessProbe"]["path"] = "/healthz"
    with pytest.raises(kubernetes_validate.ValidationError, match="'path' was unexpected"):
        kubernetes_validate.validate(deployment, KUBE_VERSIONS[0], strict=True)


@pytest.mark.parametrize("name", sorted(EXPECTED_KINDS))
def test_every_pod_is_unprivileged_with_a_read_only_root(chart: Chart, name: str) -> None:
    for pod in pod_specs(render(chart, value_set(name))):
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["runAsUser"] != 0
        assert pod["automountServiceAccountToken"] is False
        for container in pod["containers"]:
            context = container["securityContext"]
            assert context["readOnlyRootFilesystem"] is True
            assert context["allowPrivilegeEscalation"] is False
            assert context["capabilities"]["drop"] == ["ALL"]
            assert container["readinessProbe"] and container["livenessProbe"]


@pytest.mark.parametrize("name", sorted(EXPECTED_KINDS))
def test_gateway_probes_and_writable_volumes(chart: Chart, name: str) -> None:
    manifests = render(chart, value_set(name))
    container = gateway_container(manifests)
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert container["ports"] == [{"name": "http", "containerPort": 8080, "protocol": "TCP"}]
    pod = only(manifests, "Deployment", "hg-hybrid-gateway")["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    for path in ("/tmp", env_of(container)["HYBRID_GATEWAY_DATA_DIR"]):
        volume = volumes[mounts[path]["name"]]
        assert not mounts[path].get("readOnly") and ("emptyDir" in volume or "persistentVolumeClaim" in volume)


def test_embedded_single_replica_keeps_its_knowledge_on_a_volume(chart: Chart) -> None:
    manifests = render(chart, value_set("embedded"))
    deployment = only(manifests, "Deployment", "hg-hybrid-gateway")
    claim = only(manifests, "PersistentVolumeClaim")
    volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
    assert volumes["data"] == {"name": "data", "persistentVolumeClaim": {"claimName": claim["metadata"]["name"]}}
    assert claim["spec"]["storageClassName"] == "fast-ssd"
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}  # one ReadWriteOnce volume, one pod at a time
    assert volumes["policies"] == {"name": "policies", "configMap": {"name": "gateway-policies"}}
    assert "HYBRID_GATEWAY_CHROMA_URL" not in env_of(gateway_container(manifests))


@pytest.mark.parametrize("name", sorted(EXPECTED_KINDS))
def test_rendered_flags_and_env_build_the_intended_gateway(chart: Chart, name: str, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """The gateway's own parser and Settings read what the chart sets (names, types, values)."""
    values = chart.merge_values(value_set(name))
    container = gateway_container(render(chart, values))
    args = build_parser().parse_args(["serve", *container["args"]])
    assert (args.host, args.port, args.workers, args.demo) == ("0.0.0.0", 8080, values["workers"], values["demo"])
    for var, value in env_of(container).items():
        if isinstance(value, str) and not var.endswith("_FILE"):
            monkeypatch.setenv(var, value)
        elif var == "HYBRID_GATEWAY_API_KEYS_FILE":  # the Secret's file, as the pod would read it
            (tmp_path / "client-keys").write_text("sk-from-the-secret\n")
            monkeypatch.setenv(var, str(tmp_path / "client-keys"))
    if args.allow_unauthenticated:
        monkeypatch.setenv("HYBRID_GATEWAY_ALLOW_UNAUTHENTICATED", "1")
    settings = Settings.from_env()
    assert exposure_problem(args.host, settings) is None  # `serve` starts on the pod network
    assert bool(settings.api_key_digests) != args.allow_unauthenticated
    if values["allowedHosts"]:
        assert settings.edge.allowed_hosts == {host.lower() for host in values["allowedHosts"]}
    else:  # unset: `serve` bound beyond loopback answers any name
        assert "HYBRID_GATEWAY_ALLOWED_HOSTS" not in env_of(container)
    assert settings.data_dir == Path("/var/lib/hybrid-gateway")
    assert settings.max_body_bytes == values["maxBodyBytes"]
    assert settings.reload_interval_s == values["policyReloadIntervalSeconds"]
    assert settings.redis_prefix == values["redis"]["prefix"]


def test_ha_wires_the_bundled_redis_and_chroma_services(chart: Chart) -> None:
    manifests = render(chart, value_set("ha"))
    env = env_of(gateway_container(manifests))
    for var, service in (("HYBRID_GATEWAY_REDIS_URL", "hg-hybrid-gateway-redis"),
                         ("HYBRID_GATEWAY_CHROMA_URL", "hg-hybrid-gateway-chroma")):
        match = re.fullmatch(r"(redis|http)://([^:/]+):(\d+)(/\d+)?", env[var])
        assert match, env[var]
        ports = [p["port"] for p in only(manifests, "Service", match.group(2))["spec"]["ports"]]
        assert match.group(2) == service and int(match.group(3)) in ports
    assert "replicas" not in only(manifests, "Deployment", "hg-hybrid-gateway")["spec"]  # the HPA owns it


def test_services_and_policies_select_the_pods_they_mean(chart: Chart) -> None:
    manifests = render(chart, value_set("ha"))
    pods = {m["metadata"]["name"]: m["spec"]["template"]["metadata"]["labels"]
            for m in manifests if m["kind"] in ("Deployment", "StatefulSet")}
    selected = [(m["metadata"]["name"], m["spec"]["selector"]) for m in manifests if m["kind"] == "Service"]
    selected += [(m["metadata"]["name"], m["spec"]["selector"]["matchLabels"])
                 for m in manifests if m["kind"] in ("PodDisruptionBudget", "ServiceMonitor")]
    selected += [(m["metadata"]["name"], m["spec"]["podSelector"]["matchLabels"])
                 for m in manifests if m["kind"] == "NetworkPolicy"]
    for name, selector in selected:
        matches = [pod for pod, labels in pods.items() if selector.items() <= labels.items()]
        assert matches == [name], (name, matches)


def test_secrets_are_referenced_by_name_never_rendered(chart: Chart) -> None:
    ha, external = render(chart, value_set("ha")), render(chart, value_set("external"))
    assert not [m for m in ha + external if m["kind"] == "Secret"]
    container = gateway_container(ha)
    assert container["envFrom"] == [{"secretRef": {"name": "llm-provider-keys"}}]
    pod = only(ha, "Deployment", "hg-hybrid-gateway")["spec"]["template"]["spec"]
    keys = next(v for v in pod["volumes"] if v["name"] == "api-keys")
    assert keys == {"name": "api-keys", "secret": {"secretName": "gateway-api-keys"}}
    env = env_of(container)
    assert env["HYBRID_GATEWAY_API_KEYS_FILE"] == "/etc/hybrid-gateway/keys/client-keys"
    assert env["HYBRID_GATEWAY_ADMIN_KEYS_FILE"] == "/etc/hybrid-gateway/keys/admin-keys"
    assert env_of(gateway_container(external))["HYBRID_GATEWAY_REDIS_URL"] == {
        "secretKeyRef": {"name": "gateway-redis", "key": "url"}}
    assert env_of(gateway_container(external))["HYBRID_GATEWAY_DATABASE_URL"] == {
        "secretKeyRef": {"name": "gateway-database", "key": "database-url"}}
    assert "HYBRID_GATEWAY_DATABASE_URL" not in env  # none given: each pod's captures stay in its SQLite


def test_policies_configmap_is_a_valid_directory_and_rolls_pods_on_change(chart: Chart) -> None:
    values = value_set("ha")
    manifests = render(chart, values)
    configmap = only(manifests, "ConfigMap", "hg-hybrid-gateway-policies")
    assert configmap["data"] == values["policies"]["files"]
    container = gateway_container(manifests)
    mount = next(m for m in container["volumeMounts"] if m["name"] == "policies")
    assert "subPath" not in mount  # a subPath mount never sees ConfigMap updates
    assert env_of(container)["HYBRID_GATEWAY_POLICIES"] == mount["mountPath"]

    def checksum(files: dict[str, str]) -> str:
        changed = {**values, "policies": {**values["policies"], "files": files}}
        deployment = only(render(chart, changed), "Deployment", "hg-hybrid-gateway")
        return str(deployment["spec"]["template"]["metadata"]["annotations"]["checksum/policies"])

    files = values["policies"]["files"]
    assert checksum(files) == hashlib.sha256(json.dumps(files, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
    assert checksum({**files, "routes.yaml": files["routes.yaml"] + "\n"}) != checksum(files)
    in_place = {**values, "policies": {**values["policies"], "rollOnChange": False}}
    assert "annotations" not in only(render(chart, in_place), "Deployment", "hg-hybrid-gateway")["spec"]["template"]["metadata"]


def _kubelet_write(directory: Path, files: dict[str, str], generation: str) -> None:
    """Lay out files as the kubelet's atomic writer does: a timestamped dir, an ``..data`` symlink
    swapped by rename, and one top-level symlink per key."""
    target = directory / f"..{generation}"
    target.mkdir()
    for name, text in files.items():
        (target / name).write_text(text, encoding="utf-8")
    (directory / "..data_tmp").symlink_to(target.name)
    os.replace(directory / "..data_tmp", directory / "..data")
    for name in files:
        if not (directory / name).is_symlink():
            (directory / name).symlink_to(f"..data/{name}")


def test_hot_reload_sees_a_configmap_update(chart: Chart, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    values = value_set("ha")
    manifests = render(chart, values)
    for var, value in env_of(gateway_container(manifests)).items():
        if var == "HYBRID_GATEWAY_FT_MODEL":
            monkeypatch.setenv(var, value)
    files = only(manifests, "ConfigMap", "hg-hybrid-gateway-policies")["data"]
    _kubelet_write(tmp_path, files, "2026_01_01_00_00_00.1")
    holder = PolicyHolder(tmp_path)
    assert set(holder.current.routes) == {"support"}
    assert holder.current.targets["support-ft"].model == "ft:gpt-4o-mini-2024-07-18:acme::support"
    renamed = {**files, "routes.yaml": files["routes.yaml"].replace("support:", "helpdesk:")}
    _kubelet_write(tmp_path, renamed, "2026_01_01_00_01_00.2")
    assert holder.reload() == "success"
    assert set(holder.current.routes) == {"helpdesk"}


def test_monitoring_objects_carry_the_shipped_rules_and_dashboard(chart: Chart) -> None:
    manifests = render(chart, value_set("ha"))
    rules = yaml.safe_load((CHART / "files" / "prometheus-rules.yaml").read_text(encoding="utf-8"))
    rule = only(manifests, "PrometheusRule")
    assert rule["spec"]["groups"] == rules["groups"]
    assert rule["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    monitor = only(manifests, "ServiceMonitor")
    assert monitor["spec"]["endpoints"] == [{"port": "http", "path": "/metrics", "interval": "30s", "authorization": {
        "type": "Bearer", "credentials": {"name": "prometheus-gateway-token", "key": "token"}}}]
    open_metrics = {**value_set("ha"), "monitoring": {**value_set("ha")["monitoring"], "requireKey": False}}
    monitor = only(render(chart, open_metrics), "ServiceMonitor")
    assert "authorization" not in monitor["spec"]["endpoints"][0]
    assert env_of(gateway_container(render(chart, open_metrics)))["HYBRID_GATEWAY_MONITORING_NEEDS_KEY"] == "false"
    dashboard = only(manifests, "ConfigMap", "hg-hybrid-gateway-dashboard")
    assert dashboard["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert dashboard["metadata"]["namespace"] == "monitoring"
    shipped = json.loads((CHART / "files" / "grafana-dashboard.json").read_text(encoding="utf-8"))
    assert json.loads(dashboard["data"]["hybrid-gateway.json"]) == shipped


def memory_mi(container: Manifest) -> tuple[int, int]:
    """The container's memory request and limit in MiB (the chart writes both in Mi)."""
    request, limit = container["resources"]["requests"]["memory"], container["resources"]["limits"]["memory"]
    assert request.endswith("Mi") and limit.endswith("Mi")
    return int(request[:-2]), int(limit[:-2])


def test_memory_request_and_limit_grow_with_workers(chart: Chart) -> None:
    """Each worker adds memory.perWorkerMi to the request and limit headroom on top; a fixed 768Mi/1536Mi
    was outgrown by two workers of the embedded default, and a 4-worker pod was OOM-killed."""
    memory = yaml.safe_load((CHART / "values.yaml").read_text(encoding="utf-8"))["memory"]
    sizes = {workers: memory_mi(gateway_container(render(chart, {**value_set("minimal"), "workers": workers})))
             for workers in (1, 2, 4)}
    requests, limits = [sizes[w][0] for w in (1, 2, 4)], [sizes[w][1] for w in (1, 2, 4)]
    assert requests[1] - requests[0] == (requests[2] - requests[1]) / 2 == memory["perWorkerMi"]
    assert requests[0] == memory["baseMi"] + memory["perWorkerMi"]
    assert limits[0] < limits[1] < limits[2]
    assert all(limit * 100 >= request * memory["limitPercent"] - 100 for request, limit in sizes.values())
    fixed = gateway_container(render(chart, {**value_set("minimal"), "workers": 2, "memory": {"limitMi": 4096},
                                             "resources": {"limits": {"cpu": "2"}}}))
    assert memory_mi(fixed) == (requests[1], 4096)
    assert fixed["resources"]["limits"]["cpu"] == "2" and fixed["resources"]["requests"]["cpu"] == "500m"


@pytest.mark.parametrize(("change", "message"), [
    ({"replicaCount": -1}, "at '/replicaCount': minimum: got -1, want 1"),
    ({"chroma": {"mode": "sqlite"}}, "at '/chroma/mode': value must be one of"),
    ({"replicas": 2}, "additional properties 'replicas' not allowed"),
    ({"workers": 0}, "at '/workers': minimum: got 0, want 1"),
    ({"redis": {"url": "localhost:6379"}}, "at '/redis/url'"),
    ({"database": {"url": "mysql://db/captures"}}, "at '/database/url'"),
    ({"chroma": {"mode": "external"}}, "at '/chroma/url'"),
    ({"ingress": {"enabled": True}}, "at '/ingress/host'"),
    ({"policies": {"files": {"routes.json": "{}"}}}, "'routes.json' does not match pattern"),
    ({"memory": {"limitPercent": 50}}, "at '/memory/limitPercent': minimum: got 50, want 100"),
])
def test_schema_refuses_bad_values(chart: Chart, change: dict[str, Any], message: str) -> None:
    with pytest.raises(HelmValuesError, match=re.escape(message)):
        render(chart, change)


@pytest.mark.parametrize(("change", "message"), [
    ({"replicaCount": 3}, "chroma.mode=embedded keeps a separate knowledge base in each pod and supports a "
                          "single replica, but up to 3 gateway pods were requested"),
    ({"autoscaling": {"enabled": True}, "redis": {"bundled": {"enabled": True}}},
     "chroma.mode=embedded keeps a separate knowledge base in each pod and supports a single replica, but up to 6"),
    ({"replicaCount": 2, "chroma": {"mode": "server"}}, "2 gateway pods need shared state"),
    ({"redis": {"url": "redis://r:6379", "bundled": {"enabled": True}}},
     "redis.bundled.enabled=true conflicts with redis.url/redis.existingSecret"),
    ({"podDisruptionBudget": {"enabled": True}},
     "podDisruptionBudget.minAvailable=1 with as few as 1 gateway pods would block every node drain"),
    ({"autoscaling": {"enabled": True, "minReplicas": 2}, "podDisruptionBudget": {"enabled": True, "minAvailable": 2},
      "redis": {"url": "redis://r:6379"}, "chroma": {"mode": "server"}},
     "podDisruptionBudget.minAvailable=2 with as few as 2 gateway pods"),
    ({"policies": {"existingConfigMap": "p", "rollOnChange": True}}, "policies.rollOnChange needs policies.files"),
    ({}, "refuses to do so without client keys: set apiKeys.existingSecret"),
    ({"apiKeys": {"existingSecret": "k"}, "monitoring": {"serviceMonitor": {"enabled": True}}},
     "with client keys, /metrics needs one: set monitoring.serviceMonitor.bearerTokenSecret.name"),
    ({"workers": 4, "memory": {"limitMi": 1024}}, "memory.limitMi=1024 cannot hold 4 workers: they need 1216 MiB"),
    ({"resources": {"limits": {"memory": "1536Mi"}}}, "gateway memory follows workers: set memory.perWorkerMi"),
])
def test_templates_refuse_unsafe_combinations(chart: Chart, change: dict[str, Any], message: str) -> None:
    with pytest.raises(HelmRenderError, match=re.escape(message)):
        render(chart, change)


def test_image_matches_what_the_chart_assumes() -> None:
    """The Dockerfile cannot be built here (no Docker engine); check the facts the chart relies on."""
    dockerfile = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    instructions = dict(re.findall(r"^(USER|EXPOSE|ENTRYPOINT|HEALTHCHECK) (.+?)$", dockerfile, re.MULTILINE))
    assert instructions["USER"] == "10001:10001"
    assert instructions["EXPOSE"] == "8080"
    assert json.loads(instructions["ENTRYPOINT"]) == ["hybrid-gateway", "serve"]
    assert "/healthz" in dockerfile.split("HEALTHCHECK", 1)[1].split("\n\n", 1)[0]
    for env in ("HF_HUB_OFFLINE=1", "HYBRID_GATEWAY_DATA_DIR=/var/lib/hybrid-gateway", "HOME=/tmp"):
        assert env in dockerfile
    copied = {name for line in re.findall(r"^COPY (?!--from)(.+) \S+$", dockerfile, re.MULTILINE) for name in line.split()}
    assert {"pyproject.toml", "setup.py", "README.md"} <= copied  # without setup.py, no compiled scorer
    with Chart.load(CHART) as chart:
        pod = only(render(chart, {"allowUnauthenticated": True}), "Deployment")["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsUser"] == 10001


def test_notes_warn_when_the_release_serves_without_keys(chart: Chart) -> None:
    def notes(values: dict[str, Any]) -> str:
        return str(chart.render(values, name="hg", namespace="ai")["hybrid-gateway/templates/NOTES.txt"])

    assert "WARNING: allowUnauthenticated=true and no apiKeys.existingSecret" in notes(value_set("minimal"))
    assert "WARNING" not in notes(value_set("ha"))
