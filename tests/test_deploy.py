"""Kubernetes deploys the whole mesh the way ``hivewire up`` runs it: one Deployment per component.

The manifests in ``k8s/`` and the Helm chart's output (``helm`` comes with the dev extra on
x86-64 Linux) are read as YAML and checked for what an operator relies on: each component
runs the image with its ``hivewire`` command, reaches NATS, asks for resources, drains
before it is killed, and the gateway is probed on ``/healthz`` and ``/readyz``. Every object
is validated against Kubernetes' schemas (``kubernetes-validate --strict``, bundled schemas),
KEDA's ScaledObjects against the fields KEDA defines, and every set of chart values the tests
render also passes ``helm lint --strict``. Nothing here needs a cluster or the network.
"""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import kubernetes_validate
import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from agents import AgentRuntime, AgentSettings, Mesh
from bus import AuthError, Bus, ConnectError, EmbeddedNats, subjects
from bus.embedded import find_nats_server
from gateway.apps import APPS
from knowledge.agent import SearchReply, SearchRequest
from tests import metric_names
from tests.processes import AGENT_ENV, agent_process
from tests.zoo import Job, jobs

ROOT = Path(__file__).parent.parent
K8S = ROOT / "k8s"
CHART = ROOT / "helm" / "hivewire"
SEED_SCRIPT = CHART / "files" / "seed.py"
# From the dev extra's helm-binary, beside this interpreter, when the PATH has no other.
HELM = shutil.which("helm") or shutil.which("helm", path=str(Path(sys.executable).parent))
needs_helm = pytest.mark.skipif(HELM is None, reason="helm is not installed")

# The component (its Deployment's name in k8s/) and the arguments of the image's `hivewire`.
COMPONENTS = {
    "gateway": ["gateway"],
    "knowledge": ["agent", "run", "knowledge.agent:knowledge"],
    "triage": ["agent", "run", "agents.desk.triage:triage"],
    "answer": ["agent", "run", "agents.desk.answer:answer"],
}
REPLICAS = {"gateway": 2, "knowledge": 1, "triage": 2, "answer": 2}

Doc = dict[str, Any]


def _documents(text: str) -> list[Doc]:
    return [doc for doc in yaml.safe_load_all(text) if doc]


def _k8s() -> list[Doc]:
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    return [doc for name in kustomization["resources"] for doc in _documents((K8S / name).read_text())]


# The oldest Kubernetes the chart supports (autoscaling/v2, policy/v1) and the newest schemas bundled.
KUBERNETES_VERSIONS = ("1.28", kubernetes_validate.utils.latest_version())

# KEDA's ScaledObject (keda.sh/v1alpha1) is a custom resource, which kubernetes-validate has no schema
# for: these are the fields KEDA 2.x defines (https://keda.sh/docs/concepts/scaling-deployments/),
# closed like --strict, with what its nats-jetstream and cpu scalers require of a trigger.
_INT = {"type": "integer", "minimum": 0}
SCALED_OBJECT = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "additionalProperties": False,
    "properties": {
        "apiVersion": {"const": "keda.sh/v1alpha1"},
        "kind": {"const": "ScaledObject"},
        "metadata": {"type": "object", "required": ["name"]},
        "spec": {
            "type": "object",
            "required": ["scaleTargetRef", "triggers"],
            "additionalProperties": False,
            "properties": {
                "scaleTargetRef": {
                    "type": "object",
                    "required": ["name"],
                    "additionalProperties": False,
                    "properties": {
                        key: {"type": "string"}
                        for key in ("apiVersion", "kind", "name", "envSourceContainerName")
                    },
                },
                **{
                    key: _INT
                    for key in (
                        "minReplicaCount",
                        "maxReplicaCount",
                        "idleReplicaCount",
                        "pollingInterval",
                        "cooldownPeriod",
                        "initialCooldownPeriod",
                    )
                },
                "advanced": {"type": "object"},
                "fallback": {"type": "object"},
                "triggers": {
                    "type": "array",
                    "minItems": 1,
                    "items": {
                        "type": "object",
                        "required": ["type", "metadata"],
                        "additionalProperties": False,
                        "properties": {
                            "type": {"type": "string"},
                            "name": {"type": "string"},
                            "metricType": {"enum": ["AverageValue", "Value", "Utilization"]},
                            "useCachedMetrics": {"type": "boolean"},
                            "authenticationRef": {"type": "object", "required": ["name"]},
                            # Every value a string: KEDA's metadata is map[string]string.
                            "metadata": {"type": "object", "additionalProperties": {"type": "string"}},
                        },
                        "allOf": [
                            {
                                "if": {"properties": {"type": {"const": "nats-jetstream"}}},
                                "then": {
                                    "properties": {
                                        "metadata": {
                                            "required": [
                                                "natsServerMonitoringEndpoint",
                                                "account",
                                                "stream",
                                                "consumer",
                                            ],
                                            "properties": {
                                                "lagThreshold": {"pattern": "^[0-9]+$"},
                                                "activationLagThreshold": {"pattern": "^[0-9]+$"},
                                                "useHttps": {"enum": ["true", "false"]},
                                            },
                                        }
                                    }
                                },
                            },
                            {
                                "if": {"properties": {"type": {"const": "cpu"}}},
                                "then": {
                                    "required": ["metricType"],
                                    "properties": {
                                        "metricType": {"enum": ["Utilization", "AverageValue"]},
                                        "metadata": {"required": ["value"]},
                                    },
                                },
                            },
                        ],
                    },
                },
            },
        },
    },
}


# The Prometheus Operator's PrometheusRule and PodMonitor (monitoring.coreos.com/v1) are custom resources
# too: the fields the Operator's CRDs define for what the chart writes, closed like --strict.
_DURATION = {"type": "string", "pattern": "^([0-9]+(ms|s|m|h|d|w|y))+$"}
_STRINGS = {"type": "object", "additionalProperties": {"type": "string"}}
_METADATA = {
    "type": "object",
    "required": ["name"],
    "properties": {"name": {"type": "string"}, "labels": _STRINGS, "annotations": _STRINGS},
}
PROMETHEUS_RULE = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "additionalProperties": False,
    "properties": {
        "apiVersion": {"const": "monitoring.coreos.com/v1"},
        "kind": {"const": "PrometheusRule"},
        "metadata": _METADATA,
        "spec": {
            "type": "object",
            "required": ["groups"],
            "additionalProperties": False,
            "properties": {
                "groups": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["name", "rules"],
                        "additionalProperties": False,
                        "properties": {
                            "name": {"type": "string", "minLength": 1},
                            "interval": _DURATION,
                            "rules": {
                                "type": "array",
                                "minItems": 1,
                                "items": {
                                    "type": "object",
                                    "required": ["expr"],
                                    "additionalProperties": False,
                                    "oneOf": [{"required": ["alert"]}, {"required": ["record"]}],
                                    "properties": {
                                        "alert": {"type": "string", "pattern": "^[A-Za-z_][A-Za-z0-9_]*$"},
                                        "record": {"type": "string"},
                                        "expr": {"type": "string", "minLength": 1},
                                        "for": _DURATION,
                                        "keep_firing_for": _DURATION,
                                        "labels": _STRINGS,
                                        "annotations": _STRINGS,
                                    },
                                },
                            },
                        },
                    },
                },
            },
        },
    },
}
POD_MONITOR = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "additionalProperties": False,
    "properties": {
        "apiVersion": {"const": "monitoring.coreos.com/v1"},
        "kind": {"const": "PodMonitor"},
        "metadata": _METADATA,
        "spec": {
            "type": "object",
            "required": ["selector", "podMetricsEndpoints"],
            "additionalProperties": False,
            "properties": {
                "selector": {"type": "object", "properties": {"matchLabels": _STRINGS}},
                "namespaceSelector": {"type": "object"},
                "jobLabel": {"type": "string"},
                "podMetricsEndpoints": {
                    "type": "array",
                    "minItems": 1,
                    "items": {
                        "type": "object",
                        "required": ["port"],
                        "additionalProperties": False,
                        "properties": {
                            "port": {"type": "string"},
                            "path": {"type": "string", "pattern": "^/"},
                            "interval": _DURATION,
                            "scheme": {"enum": ["http", "https"]},
                        },
                    },
                },
            },
        },
    },
}
CUSTOM_RESOURCES = {
    ("keda.sh/v1alpha1", "ScaledObject"): SCALED_OBJECT,
    ("monitoring.coreos.com/v1", "PrometheusRule"): PROMETHEUS_RULE,
    ("monitoring.coreos.com/v1", "PodMonitor"): POD_MONITOR,
}


def _validate(docs: list[Doc]) -> None:
    """Every object as the API server would take it: Kubernetes' schemas, strict, and the fields of
    the custom resources (KEDA's, the Prometheus Operator's) the chart writes."""
    for doc in docs:
        custom = CUSTOM_RESOURCES.get((doc["apiVersion"], doc["kind"]))
        if custom is not None or doc["apiVersion"].startswith(("keda.sh/", "monitoring.coreos.com/")):
            assert custom is not None, f"no schema for {doc['apiVersion']} {doc['kind']}"
            jsonschema.validate(doc, custom)
            continue
        for version in KUBERNETES_VERSIONS:
            kubernetes_validate.validate(doc, version, strict=True)


def _helm(*settings: str) -> list[Doc]:
    """The chart rendered with ``settings`` (``--set``), validated, and linted with the same."""
    assert HELM is not None
    sets = [arg for s in settings for arg in ("--set", s)]
    result = subprocess.run(
        [HELM, "template", "hivewire", str(CHART), *sets],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    docs = _documents(result.stdout)
    _validate(docs)
    lint = subprocess.run(
        [HELM, "lint", "--strict", str(CHART), *sets], capture_output=True, text=True, timeout=30
    )
    assert lint.returncode == 0, lint.stdout + lint.stderr
    return docs


def _find(docs: list[Doc], kind: str, name: str) -> Doc:
    (found,) = [doc for doc in docs if doc["kind"] == kind and doc["metadata"]["name"] == name]
    return found


def _container(workload: Doc) -> Doc:
    """The one container of a Deployment's or Job's pods."""
    (container,) = workload["spec"]["template"]["spec"]["containers"]
    return container


def _environment(docs: list[Doc], container: Doc) -> dict[str, str]:
    """What the container's process sees: its ConfigMaps (envFrom) overlaid with its own env."""
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        if "configMapRef" in source:
            env.update(_find(docs, "ConfigMap", source["configMapRef"]["name"])["data"])
    env.update({item["name"]: item["value"] for item in container.get("env", []) if "value" in item})
    return env


Pod = tuple[dict[str, str], dict[str, str]]  # a pod's namespace labels and its own labels
NAMESPACE = {"kubernetes.io/metadata.name": "default"}  # where `helm template` puts the release


def _pod_labels(docs: list[Doc], kind: str, name: str) -> Pod:
    return NAMESPACE, _find(docs, kind, name)["spec"]["template"]["metadata"]["labels"]


def _selects(selector: Doc, labels: dict[str, str]) -> bool:
    if any(labels.get(key) != value for key, value in selector.get("matchLabels", {}).items()):
        return False
    for expression in selector.get("matchExpressions", []):
        assert expression["operator"] == "In", expression
        if labels.get(expression["key"]) not in expression["values"]:
            return False
    return True


def _is_peer(peer: Doc, pod: Pod | None) -> bool:
    if pod is None:  # outside the cluster: only an ipBlock names it, and the chart writes none
        return "ipBlock" in peer
    namespace, labels = pod
    if "namespaceSelector" in peer:
        return _selects(peer["namespaceSelector"], namespace) and _selects(
            peer.get("podSelector", {}), labels
        )
    return namespace == NAMESPACE and _selects(peer["podSelector"], labels)


def _let_through(rules: list[Doc], peers: str, other: Pod | None, port: int) -> bool:
    return any(
        any(p["port"] == port for p in rule.get("ports", [{"port": port}]))
        and (not rule.get(peers) or any(_is_peer(peer, other) for peer in rule[peers]))
        for rule in rules
    )


def _allows(policies: list[Doc], source: Pod | None, target: Pod | None, port: int) -> bool:
    """Whether ``source`` may connect to ``target`` on ``port``: the egress of the policies that select
    the source, and the ingress of those that select the target (a pod no policy selects is open)."""

    def side(pod: Pod | None, direction: str, peers: str, other: Pod | None) -> bool:
        if pod is None or pod[0] != NAMESPACE:
            return True
        selecting = [p["spec"] for p in policies if _selects(p["spec"]["podSelector"], pod[1])]
        return not selecting or any(_let_through(spec[direction], peers, other, port) for spec in selecting)

    return side(source, "egress", "to", target) and side(target, "ingress", "from", source)


def _check_mesh(docs: list[Doc], name: str, *, nats_url: str) -> None:
    """The invariants every rendering of the mesh keeps; ``name`` maps a component to its resource."""
    for component, args in COMPONENTS.items():
        deployment = _find(docs, "Deployment", name(component))
        pod = deployment["spec"]["template"]["spec"]
        container = _container(deployment)
        env = _environment(docs, container)
        assert container["image"].split("/")[-1].startswith("hivewire:"), component
        assert container["args"] == args, component
        assert "command" not in container, f"{component} must keep the image's `hivewire` entrypoint"
        assert env["HIVEWIRE_NATS_URL"] == nats_url, component
        assert {"cpu", "memory"} <= set(container["resources"]["requests"]), component
        assert {"cpu", "memory"} <= set(container["resources"]["limits"]), component
        assert pod["terminationGracePeriodSeconds"] > float(env["HIVEWIRE_DRAIN_GRACE"]), component
        assert pod["securityContext"]["runAsNonRoot"] is True, component
        assert pod["enableServiceLinks"] is False, component

    gateway = _container(_find(docs, "Deployment", name("gateway")))
    env = _environment(docs, gateway)
    assert (env["HIVEWIRE_GATEWAY_HOST"], env["HIVEWIRE_GATEWAY_PORT"]) == ("0.0.0.0", "8080")
    assert (env["HIVEWIRE_GATEWAY_AGENT"], env["HIVEWIRE_GATEWAY_SKILL"]) == ("triage", "chat")
    assert gateway["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert gateway["livenessProbe"]["httpGet"]["path"] == "/healthz"
    (port,) = _find(docs, "Service", name("gateway"))["spec"]["ports"]
    assert (port["port"], port["targetPort"]) == (8080, "http")


def _check_knowledge_embedded(docs: list[Doc], name: str) -> None:
    """Embedded Chroma on a volume: one writer, so one replica, never two pods at once."""
    deployment = _find(docs, "Deployment", name("knowledge"))
    container = _container(deployment)
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"]["type"] == "Recreate"
    assert _environment(docs, container)["HIVEWIRE_CHROMA_PATH"] == "/data/chroma"
    (data,) = [mount for mount in container["volumeMounts"] if mount["mountPath"] == "/data"]
    (volume,) = [v for v in deployment["spec"]["template"]["spec"]["volumes"] if v["name"] == data["name"]]
    claim = _find(docs, "PersistentVolumeClaim", volume["persistentVolumeClaim"]["claimName"])
    assert claim["spec"]["accessModes"] == ["ReadWriteOnce"]


def test_k8s_deploys_the_processes_hivewire_up_runs() -> None:
    up = {target.split(":")[0] for target, _ in APPS["desk"].agents}  # the default app
    deployed = {args[-1].split(":")[0] for args in COMPONENTS.values() if args[0] == "agent"}
    assert deployed == up


def test_kustomization_lists_every_manifest() -> None:
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    on_disk = {path.name for path in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert set(kustomization["resources"]) == on_disk
    assert [image["name"] for image in kustomization["images"]] == ["hivewire"]


def test_k8s_manifests_run_the_whole_mesh() -> None:
    docs = _k8s()
    _validate(docs)
    _check_mesh(docs, lambda component: component, nats_url="nats://nats:4222")
    _check_knowledge_embedded(docs, lambda component: component)
    for component, replicas in REPLICAS.items():
        assert _find(docs, "Deployment", component)["spec"]["replicas"] == replicas
    assert _find(docs, "ConfigMap", "hivewire-env")["data"]["HIVEWIRE_REDIS_URL"] == "redis://redis:6379/0"
    assert _find(docs, "Service", "redis")["spec"]["ports"][0]["port"] == 6379
    for component in COMPONENTS:
        sources = _container(_find(docs, "Deployment", component))["envFrom"]
        assert {"secretRef": {"name": "hivewire-llm", "optional": True}} in sources, component


def _component(folder: str) -> tuple[Doc, list[Doc]]:
    """A kustomize component in k8s/: its kustomization and the objects it adds."""
    kustomization = yaml.safe_load((K8S / folder / "kustomization.yaml").read_text())
    assert kustomization["kind"] == "Component"
    docs = [
        doc for name in kustomization["resources"] for doc in _documents((K8S / folder / name).read_text())
    ]
    _validate(docs)
    return kustomization, docs


def test_k8s_scales_triage_and_answer_on_their_task_backlog_with_the_keda_component() -> None:
    kustomization, scaled = _component("keda")
    base = _k8s()
    monitor = {"name": "monitor", "port": 8222, "targetPort": "monitor"}
    assert monitor in _find(base, "Service", "nats")["spec"]["ports"]
    assert "http_port: 8222" in _find(base, "ConfigMap", "nats-config")["data"]["nats.conf"]
    targets = []
    for doc in scaled:
        agent = doc["spec"]["scaleTargetRef"]["name"]
        targets.append(agent)
        _find(base, "Deployment", agent)
        lag = doc["spec"]["triggers"][0]["metadata"]
        assert (lag["stream"], lag["consumer"]) == (subjects.TASKS_STREAM, subjects.task_consumer(agent))
        assert lag["natsServerMonitoringEndpoint"] == "nats.hivewire.svc:8222"
        assert doc["spec"]["minReplicaCount"] >= 1
    assert sorted(targets) == ["answer", "triage"]
    # KEDA owns the replica count: the component takes it out of exactly those Deployments.
    removed = sorted(p["target"]["name"] for p in kustomization["patches"] if "/spec/replicas" in p["patch"])
    assert removed == ["answer", "triage"]


def test_k8s_network_policies_component_lets_through_only_the_flows_the_mesh_needs() -> None:
    _, policies = _component("network-policies")
    base = _k8s()
    pods = {
        name: _pod_labels(base, "Deployment", name)
        for name in ("gateway", "triage", "answer", "knowledge", "redis")
    }
    pods["nats"] = _pod_labels(base, "StatefulSet", "nats")
    (seed,) = _documents((K8S / "jobs" / "seed-knowledge.yaml").read_text())
    pods["seed"] = NAMESPACE, seed["spec"]["template"]["metadata"]["labels"]
    for name, (_, labels) in pods.items():
        (policy,) = [p for p in policies if _selects(p["spec"]["podSelector"], labels)]
        assert policy["spec"]["policyTypes"] == ["Ingress", "Egress"], name
    keda = {"kubernetes.io/metadata.name": "keda"}, {"app": "keda-operator"}
    dns = {"kubernetes.io/metadata.name": "kube-system"}, {"k8s-app": "kube-dns"}
    stranger = NAMESPACE, {"app": "something-else"}
    p = pods
    allowed = [
        (stranger, p["gateway"], 8080),
        *((p[c], p["nats"], 4222) for c in ("gateway", "triage", "answer", "knowledge", "seed")),
        *((p[c], p["redis"], 6379) for c in ("gateway", "triage", "answer", "knowledge")),
        *((p[c], dns, 53) for c in ("gateway", "triage", "knowledge", "seed")),
        (keda, p["nats"], 8222),
        (p["answer"], None, 443),
    ]
    denied = [
        (p["gateway"], None, 443),
        (p["seed"], p["redis"], 6379),
        (stranger, p["nats"], 4222),
        (stranger, p["redis"], 6379),
        (stranger, p["nats"], 8222),
        (p["nats"], None, 443),
        (p["triage"], p["gateway"], 8080),
    ]
    assert [flow for flow in allowed if not _allows(policies, *flow)] == []
    assert [flow for flow in denied if _allows(policies, *flow)] == []


def test_k8s_jobs_create_a_key_and_seed_through_the_knowledge_agent() -> None:
    (key_job,) = _documents((K8S / "jobs" / "create-key.yaml").read_text())
    _validate([key_job])
    assert _container(key_job)["args"][:4] == ["keys", "create", "--tenant", "demo"]
    (seed_job,) = _documents((K8S / "jobs" / "seed-knowledge.yaml").read_text())
    _validate([seed_job])
    seed = _container(seed_job)
    assert seed["command"][:2] == ["python", "-c"]
    assert seed["command"][2] == SEED_SCRIPT.read_text(), "k8s/jobs/seed-knowledge.yaml embeds files/seed.py"


def test_the_dockerfile_installs_the_lock_file_with_hashes_and_runs_hivewire() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    stages = re.findall(r"^FROM (\S+)", dockerfile, flags=re.MULTILINE)
    assert len(stages) >= 2, "multi-stage: the build tools stay out of the image"
    assert "ARG PYTHON_IMAGE=python:3.11-slim" in dockerfile
    assert re.search(r"uv pip install .*--require-hashes -r requirements\.lock", dockerfile)
    (user,) = re.findall(r"^USER (\S+)", dockerfile, flags=re.MULTILINE)
    assert user.split(":")[0] not in {"root", "0"}
    assert 'ENTRYPOINT ["hivewire"]' in dockerfile
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {".venv/", ".git/", ".hivewire/"} <= set(ignored)


@pytest.fixture(scope="module")
def chart() -> list[Doc]:
    return _helm()


@needs_helm
def test_the_helm_chart_runs_the_whole_mesh(chart: list[Doc]) -> None:
    _check_mesh(chart, lambda component: f"hivewire-{component}", nats_url="nats://hivewire-nats:4222")
    _check_knowledge_embedded(chart, lambda component: f"hivewire-{component}")
    for component, replicas in REPLICAS.items():
        assert _find(chart, "Deployment", f"hivewire-{component}")["spec"]["replicas"] == replicas
    env = _find(chart, "ConfigMap", "hivewire-env")["data"]
    assert env["HIVEWIRE_REDIS_URL"] == "redis://hivewire-redis:6379/0"
    # Offline mode (no model Secret) and no seed Job unless asked for.
    assert not [doc for doc in chart if doc["kind"] in {"Secret", "Job"}]


@needs_helm
def test_the_helm_chart_scales_knowledge_on_a_chroma_server_and_takes_external_services() -> None:
    docs = _helm(
        "knowledge.chromaUrl=http://chroma:8000",
        "knowledge.replicas=3",
        "redis.enabled=false",
        "redis.url=redis://redis.example:6379/0",
        "llm.baseUrl=http://llm.example/v1",
        "llm.apiKey=sk-test",
        "otel.OTEL_TRACES_EXPORTER=otlp",
        "seed.enabled=true",
    )
    _check_mesh(docs, lambda component: f"hivewire-{component}", nats_url="nats://hivewire-nats:4222")
    knowledge = _find(docs, "Deployment", "hivewire-knowledge")
    assert knowledge["spec"]["replicas"] == 3
    assert _environment(docs, _container(knowledge))["HIVEWIRE_CHROMA_URL"] == "http://chroma:8000"
    assert not [doc for doc in docs if doc["kind"] == "PersistentVolumeClaim"]
    env = _find(docs, "ConfigMap", "hivewire-env")["data"]
    assert env["HIVEWIRE_REDIS_URL"] == "redis://redis.example:6379/0"
    assert env["OTEL_TRACES_EXPORTER"] == "otlp"
    assert not [doc for doc in docs if doc["metadata"]["name"] == "hivewire-redis"]
    secret = _find(docs, "Secret", "hivewire-llm")
    assert secret["stringData"]["HIVEWIRE_LLM_BASE_URL"] == "http://llm.example/v1"
    assert {"secretRef": {"name": "hivewire-llm"}} in _container(knowledge)["envFrom"]
    seed = _container(_find(docs, "Job", "hivewire-seed"))
    assert seed["command"] == ["python", "-c", SEED_SCRIPT.read_text()]


@needs_helm
def test_the_helm_chart_autoscales_the_gateway_and_agents_on_cpu_when_asked() -> None:
    docs = _helm(
        "gateway.autoscaling.enabled=true",
        "gateway.autoscaling.maxReplicas=8",
        "answer.autoscaling.enabled=true",
        "answer.autoscaling.minReplicas=1",
    )
    gateway = _find(docs, "HorizontalPodAutoscaler", "hivewire-gateway")["spec"]
    assert gateway["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "hivewire-gateway",
    }
    assert (gateway["minReplicas"], gateway["maxReplicas"]) == (2, 8)
    assert gateway["metrics"][0]["resource"]["target"] == {"type": "Utilization", "averageUtilization": 70}
    # The autoscaler owns the replica count: an upgrade must not reset it.
    assert "replicas" not in _find(docs, "Deployment", "hivewire-gateway")["spec"]
    assert _find(docs, "Deployment", "hivewire-triage")["spec"]["replicas"] == 2
    assert not [
        d for d in docs if d["kind"] == "HorizontalPodAutoscaler" and "triage" in d["metadata"]["name"]
    ]
    # A disruption budget only while at least two replicas are kept.
    budgets = {d["metadata"]["name"] for d in docs if d["kind"] == "PodDisruptionBudget"}
    assert budgets == {"hivewire-gateway", "hivewire-triage"}


@needs_helm
def test_the_helm_chart_scales_agents_on_their_task_backlog_with_keda_when_asked() -> None:
    docs = _helm(
        "triage.keda.enabled=true",
        "answer.keda.enabled=true",
        "answer.keda.cpuUtilization=0",
        "answer.keda.minReplicas=1",
        "knowledge.chromaUrl=http://chroma:8000",
        "knowledge.keda.enabled=true",
    )
    scaled = {d["spec"]["scaleTargetRef"]["name"]: d["spec"] for d in docs if d["kind"] == "ScaledObject"}
    assert set(scaled) == {"hivewire-triage", "hivewire-answer", "hivewire-knowledge"}
    for agent in ("triage", "answer", "knowledge"):
        spec = scaled[f"hivewire-{agent}"]
        assert spec["scaleTargetRef"]["kind"] == "Deployment"
        lag = spec["triggers"][0]["metadata"]
        # The consumer every replica of the agent pulls from, read on NATS's monitoring port.
        assert spec["triggers"][0]["type"] == "nats-jetstream"
        assert (lag["stream"], lag["consumer"]) == (subjects.TASKS_STREAM, subjects.task_consumer(agent))
        assert (lag["natsServerMonitoringEndpoint"], lag["account"]) == (
            "hivewire-nats.default.svc:8222",
            "$G",
        )
        # KEDA owns the replica count: no replicas in the Deployment, no CPU autoscaler of the chart's.
        assert "replicas" not in _find(docs, "Deployment", f"hivewire-{agent}")["spec"]
    assert not [d for d in docs if d["kind"] == "HorizontalPodAutoscaler"]
    assert [t["type"] for t in scaled["hivewire-triage"]["triggers"]] == ["nats-jetstream", "cpu"]
    assert scaled["hivewire-triage"]["triggers"][1]["metadata"] == {"value": "70"}
    assert [t["type"] for t in scaled["hivewire-answer"]["triggers"]] == ["nats-jetstream"]
    assert (scaled["hivewire-answer"]["minReplicaCount"], scaled["hivewire-answer"]["maxReplicaCount"]) == (
        1,
        10,
    )
    # The monitoring port KEDA reads is served and published.
    assert "http_port: 8222" in _find(docs, "ConfigMap", "hivewire-nats-config")["data"]["nats.conf"]
    assert {"name": "monitor", "port": 8222, "targetPort": "monitor"} in _find(
        docs, "Service", "hivewire-nats"
    )["spec"]["ports"]
    # A disruption budget while KEDA keeps two replicas at least.
    budgets = {d["metadata"]["name"] for d in docs if d["kind"] == "PodDisruptionBudget"}
    assert budgets == {"hivewire-gateway", "hivewire-triage"}


@needs_helm
def test_keda_reads_an_external_nats_at_the_endpoint_given() -> None:
    docs = _helm(
        "nats.enabled=false",
        "externalNats.url=nats://nats.example:4222",
        "keda.natsMonitoringEndpoint=nats.example:8222",
        "keda.account=HIVEWIRE",
        "triage.keda.enabled=true",
    )
    (scaled,) = [d for d in docs if d["kind"] == "ScaledObject"]
    lag = scaled["spec"]["triggers"][0]["metadata"]
    assert (lag["natsServerMonitoringEndpoint"], lag["account"]) == ("nats.example:8222", "HIVEWIRE")


@needs_helm
def test_the_helm_chart_lets_through_only_the_flows_the_mesh_needs_when_asked() -> None:
    docs = _helm(
        "networkPolicy.enabled=true",
        "networkPolicy.metricsFrom[0].namespaceSelector.matchLabels.kubernetes\\.io/metadata\\.name=monitoring",
        "networkPolicy.natsClientsFrom[0].podSelector.matchLabels.app=my-agent",
        "llm.baseUrl=https://llm.example/v1",
        "seed.enabled=true",
    )
    policies = [d for d in docs if d["kind"] == "NetworkPolicy"]
    pods = {
        name: _pod_labels(docs, "Deployment", f"hivewire-{name}")
        for name in ("gateway", "triage", "answer", "knowledge", "redis")
    }
    pods["nats"] = _pod_labels(docs, "StatefulSet", "hivewire-nats")
    pods["seed"] = _pod_labels(docs, "Job", "hivewire-seed")
    for name, (_, labels) in pods.items():
        (policy,) = [p for p in policies if _selects(p["spec"]["podSelector"], labels)]
        assert policy["spec"]["policyTypes"] == ["Ingress", "Egress"], name  # denied unless listed
    keda = {"kubernetes.io/metadata.name": "keda"}, {"app": "keda-operator"}
    prometheus = {"kubernetes.io/metadata.name": "monitoring"}, {"app": "prometheus"}
    dns = {"kubernetes.io/metadata.name": "kube-system"}, {"k8s-app": "kube-dns"}
    ingress_controller = {"kubernetes.io/metadata.name": "ingress"}, {"app": "ingress-nginx"}
    my_agent = NAMESPACE, {"app": "my-agent"}
    stranger = NAMESPACE, {"app": "something-else"}
    p = pods
    allowed = [
        (ingress_controller, p["gateway"], 8080),
        *((p[c], p["nats"], 4222) for c in ("gateway", "triage", "answer", "knowledge", "seed")),
        *((p[c], p["redis"], 6379) for c in ("gateway", "triage", "answer", "knowledge")),
        *((p[c], dns, 53) for c in ("gateway", "triage", "answer", "knowledge", "seed")),
        (keda, p["nats"], 8222),
        (prometheus, p["triage"], 9464),
        (prometheus, p["gateway"], 8080),
        (p["triage"], None, 443),  # the model endpoint
        (p["answer"], None, 443),
        (my_agent, p["nats"], 4222),
    ]
    denied = [
        (p["gateway"], None, 443),
        (p["seed"], p["redis"], 6379),
        (p["triage"], p["gateway"], 8080),
        (p["triage"], p["answer"], 9464),
        (prometheus, p["nats"], 8222),
        (keda, p["triage"], 9464),
        (stranger, p["nats"], 4222),
        (stranger, p["redis"], 6379),
        (stranger, p["triage"], 9464),
        (p["nats"], None, 443),
        (p["redis"], p["nats"], 4222),
        (ingress_controller, p["nats"], 4222),
    ]
    assert [flow for flow in allowed if not _allows(policies, *flow)] == []
    assert [flow for flow in denied if _allows(policies, *flow)] == []


@needs_helm
def test_the_helm_chart_gives_each_agent_its_mcp_servers_when_asked(
    chart: list[Doc], monkeypatch: pytest.MonkeyPatch
) -> None:
    for agent in ("triage", "answer", "knowledge"):
        container = _container(_find(chart, "Deployment", f"hivewire-{agent}"))
        assert "HIVEWIRE_MCP_SERVERS" not in {item["name"] for item in container.get("env", [])}, agent
    docs = _helm(
        "triage.mcpServers.search.url=http://search.tools.svc:9000/mcp",
        "triage.mcpServers.search.cache={lookup}",
        "triage.mcpServers.search.timeout=20",
        "triage.mcpServers.files.command={mcp-server-files,/srv/docs}",
        "answer.mcpServersSecret=answer-mcp",
        "networkPolicy.enabled=true",
    )
    triage = _environment(docs, _container(_find(docs, "Deployment", "hivewire-triage")))
    servers = json.loads(triage["HIVEWIRE_MCP_SERVERS"])
    assert servers == {
        "search": {"url": "http://search.tools.svc:9000/mcp", "cache": ["lookup"], "timeout": 20},
        "files": {"command": ["mcp-server-files", "/srv/docs"]},
    }
    # What the chart renders is what the agent process accepts.
    monkeypatch.setenv("HIVEWIRE_MCP_SERVERS", triage["HIVEWIRE_MCP_SERVERS"])
    loaded = AgentSettings(_env_file=None).mcp_servers  # type: ignore[call-arg]
    assert (loaded["search"].url, loaded["search"].timeout) == ("http://search.tools.svc:9000/mcp", 20)
    assert loaded["files"].command == ("mcp-server-files", "/srv/docs")
    # With credentials in headers or env: from a Secret, never in the Deployment.
    (secret,) = [
        item
        for item in _container(_find(docs, "Deployment", "hivewire-answer"))["env"]
        if item["name"] == "HIVEWIRE_MCP_SERVERS"
    ]
    assert secret["valueFrom"] == {"secretKeyRef": {"name": "answer-mcp", "key": "HIVEWIRE_MCP_SERVERS"}}
    assert "HIVEWIRE_MCP_SERVERS" not in _environment(
        docs, _container(_find(docs, "Deployment", "hivewire-knowledge"))
    )
    # Each agent may reach its own HTTP servers' ports, and only it.
    policies = [d for d in docs if d["kind"] == "NetworkPolicy"]
    triage_pod = _pod_labels(docs, "Deployment", "hivewire-triage")
    answer_pod = _pod_labels(docs, "Deployment", "hivewire-answer")
    assert _allows(policies, triage_pod, None, 9000)
    assert not _allows(policies, answer_pod, None, 9000)


@needs_helm
def test_network_policies_follow_external_services_and_stay_shut_without_a_model() -> None:
    docs = _helm(
        "networkPolicy.enabled=true",
        "nats.enabled=false",
        "externalNats.url=tls://nats.example:7422",
        "redis.enabled=false",
        "redis.url=rediss://redis.example:6380/0",
        "knowledge.chromaUrl=http://chroma.example:8000",
        "otel.OTEL_EXPORTER_OTLP_ENDPOINT=http://otel-collector.observability:4318",
        "networkPolicy.gatewayFrom[0].namespaceSelector.matchLabels.team=web",
    )
    policies = [d for d in docs if d["kind"] == "NetworkPolicy"]
    assert {p["metadata"]["name"] for p in policies} == {
        f"hivewire-{c}" for c in ("gateway", "triage", "answer", "knowledge")
    }
    pods = {c: _pod_labels(docs, "Deployment", f"hivewire-{c}") for c in ("gateway", "triage", "knowledge")}
    for component, pod in pods.items():
        for port in (7422, 6380, 4318):
            assert _allows(policies, pod, None, port), (component, port)
        assert not _allows(policies, pod, None, 443), component  # offline: no model endpoint to reach
    assert _allows(policies, pods["knowledge"], None, 8000)
    assert not _allows(policies, pods["triage"], None, 8000)
    web = {"kubernetes.io/metadata.name": "web", "team": "web"}, {"app": "proxy"}
    other = {"kubernetes.io/metadata.name": "other"}, {"app": "proxy"}
    assert _allows(policies, web, pods["gateway"], 8080)
    assert not _allows(policies, other, pods["gateway"], 8080)


MONITORING = (
    "monitoring.grafanaDashboard.enabled=true",
    "monitoring.grafanaDashboard.annotations.grafana_folder=Hivewire",
    "monitoring.prometheusRule.enabled=true",
    "monitoring.prometheusRule.labels.release=kube-prometheus-stack",
    "monitoring.prometheusRule.slowTurnSeconds=7.5",
    "monitoring.podMonitor.enabled=true",
)


def _expressions(docs: list[Doc]) -> dict[str, str]:
    """Every PromQL expression of the chart's alert rules and dashboard panels, by where it is."""
    found: dict[str, str] = {}
    for doc in docs:
        if doc["kind"] == "PrometheusRule":
            for group in doc["spec"]["groups"]:
                found.update({f"rule {rule['alert']}": rule["expr"] for rule in group["rules"]})
        if doc["kind"] == "ConfigMap" and "hivewire.json" in doc.get("data", {}):
            for panel in json.loads(doc["data"]["hivewire.json"])["panels"]:
                for target in panel.get("targets", []):
                    found[f"panel {panel['title']!r} {target['refId']}"] = target["expr"]
    return found


@pytest.fixture(scope="module")
def monitoring() -> list[Doc]:
    return _helm(*MONITORING)


@needs_helm
def test_the_helm_chart_ships_a_dashboard_alert_rules_and_a_pod_monitor_when_asked(
    chart: list[Doc], monitoring: list[Doc]
) -> None:
    assert not [d for d in chart if d["kind"] in {"PrometheusRule", "PodMonitor"}]
    assert not [d for d in chart if d["metadata"]["name"] == "hivewire-dashboard"]
    docs = monitoring
    dashboard = _find(docs, "ConfigMap", "hivewire-dashboard")
    # Grafana's sidecar convention: a labelled ConfigMap whose data is dashboard JSON.
    assert dashboard["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert dashboard["metadata"]["annotations"] == {"grafana_folder": "Hivewire"}
    board = json.loads(dashboard["data"]["hivewire.json"])
    assert board["uid"] == "hivewire-mesh"
    assert {"datasource"} == {v["name"] for v in board["templating"]["list"]}
    titles = {panel["title"] for panel in board["panels"]}
    for wanted in (
        "Turn latency (p50, p95)",
        "Time to first token (p50, p95)",
        "Consumer lag by agent",
        "Dead letters",
        "Hand-offs to a person",
        "Intents",
        "Sentiments",
        "Cache hit ratio",
        "Tokens by tenant and model",
        "Cost by tenant and model (last hour)",
        "429s by tenant and reason",
        "Open event streams",
        "NATS and Redis reachability",
        "Live replicas by agent",
    ):
        assert wanted in titles, wanted
    rule = _find(docs, "PrometheusRule", "hivewire")
    assert rule["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    alerts = {r["alert"]: r for group in rule["spec"]["groups"] for r in group["rules"]}
    assert set(alerts) == {
        "HivewireSlowTurns",
        "HivewireTurnErrors",
        "HivewireGatewayErrors",
        "HivewireModelErrors",
        "HivewireConsumerLag",
        "HivewireDeadLetters",
        "HivewireTokenBudgetExhausted",
        "HivewireAgentDown",
        "HivewireNatsDisconnected",
        "HivewireRedisDown",
    }
    assert alerts["HivewireSlowTurns"]["expr"].endswith("> 7.5")
    # An agent the gateways saw live, with no replica left in any gateway's view for downFor.
    down = alerts["HivewireAgentDown"]
    assert down["expr"] == "max by (agent) (hivewire_mesh_agent_replicas) == 0"
    assert (down["for"], down["labels"]["severity"]) == ("2m", "critical")
    assert "{{ $labels.agent }}" in down["annotations"]["summary"]
    assert all(r["labels"]["severity"] in {"info", "warning", "critical"} for r in alerts.values())
    # The PodMonitor scrapes every process of the release on a port its pods name.
    monitor = _find(docs, "PodMonitor", "hivewire")["spec"]
    ports = {endpoint["port"] for endpoint in monitor["podMetricsEndpoints"]}
    for component in COMPONENTS:
        deployment = _find(docs, "Deployment", f"hivewire-{component}")
        assert _selects(monitor["selector"], deployment["spec"]["template"]["metadata"]["labels"])
        named = {port["name"] for port in _container(deployment).get("ports", [])}
        assert named & ports, component


@needs_helm
def test_the_dashboard_and_alerts_use_only_metrics_the_code_exports(monitoring: list[Doc]) -> None:
    expressions = _expressions(monitoring)
    exported = metric_names.exported()
    used: set[str] = set()
    for where, expression in expressions.items():
        names = metric_names.used_in(expression)
        assert names, f"{where} reads no Hivewire metric: {expression}"
        assert names <= exported, f"{where} reads {sorted(names - exported)}, which nothing exports"
        assert expression.count("(") == expression.count(")"), where
        used |= names
    # What an operator asks about is on the dashboard: each instrument behind the issue's questions.
    for name in (
        "hivewire_turn_duration_seconds_bucket",
        "hivewire_turn_time_to_first_token_seconds_bucket",
        "hivewire_tasks_consumer_lag",
        "hivewire_tasks_queue_depth",
        "hivewire_tasks_dead_letters",
        "hivewire_desk_handoffs_total",
        "hivewire_desk_turns_total",
        "hivewire_llm_cache_hits_total",
        "hivewire_tools_cache_misses_total",
        "hivewire_llm_tokens_total",
        "hivewire_llm_cost_total",
        "hivewire_gateway_throttled_total",
        "hivewire_gateway_event_streams",
        "hivewire_nats_connected",
        "hivewire_redis_available",
        "hivewire_mesh_agent_replicas",
    ):
        assert name in used, name


@needs_helm
@pytest.mark.parametrize(
    ("settings", "refusal"),
    [
        (["knowledge.replicas=2"], "embedded Chroma has one writer"),
        (["drainGrace=60"], "must be greater than drainGrace"),
        (
            [
                "gateway.autoscaling.enabled=true",
                "gateway.autoscaling.minReplicas=5",
                "gateway.autoscaling.maxReplicas=3",
            ],
            "minReplicas (5) is above maxReplicas (3)",
        ),
        (
            ["triage.autoscaling.enabled=true", "triage.resources.requests.cpu="],
            "triage.autoscaling needs triage.resources.requests.cpu",
        ),
        (
            ["answer.autoscaling.enabled=true", "answer.keda.enabled=true"],
            "answer.autoscaling and answer.keda would both scale Deployment hivewire-answer",
        ),
        (
            ["triage.keda.enabled=true", "triage.keda.minReplicas=0"],
            "triage.keda.minReplicas must be at least 1",
        ),
        (["knowledge.keda.enabled=true"], "knowledge.keda needs knowledge.chromaUrl"),
        (
            ["triage.keda.enabled=true", "nats.enabled=false", "externalNats.url=nats://nats.example:4222"],
            "triage.keda needs keda.natsMonitoringEndpoint",
        ),
        (["triage.keda.enabled=true", "triage.resources.requests.cpu="], "triage.keda.cpuUtilization needs"),
        (["nats.auth.method=password"], "nats.auth.method password needs nats.auth.password"),
        (["nats.auth.method=token", "nats.auth.token=12345"], "nats.auth.token must start with a letter"),
        (["nats.auth.method=tls"], 'nats.auth.method must be "", "password" or "token"'),
        (["nats.tls.enabled=true"], "nats.tls.enabled needs nats.tls.secretName"),
        (
            ["nats.tls.clientSecretName=client"],
            "nats.tls.clientSecretName (mutual TLS) needs nats.tls.enabled",
        ),
        (
            ["triage.mcpServers.search.url=http://s:9000/mcp", "triage.mcpServersSecret=mcp"],
            "triage.mcpServers and triage.mcpServersSecret both give HIVEWIRE_MCP_SERVERS",
        ),
        (
            ["knowledge.mcpServersSecret=mcp", "knowledge.env.HIVEWIRE_MCP_SERVERS={}"],
            "knowledge.env.HIVEWIRE_MCP_SERVERS and knowledge.mcpServers (or .mcpServersSecret) both give",
        ),
    ],
)
def test_the_helm_chart_refuses_settings_that_cannot_work(settings: list[str], refusal: str) -> None:
    with pytest.raises(subprocess.CalledProcessError) as failed:
        _helm(*settings)
    assert refusal in failed.value.stderr


@pytest.mark.slow
async def test_the_seed_job_ingests_a_folder_through_the_knowledge_agent(
    nats_server: EmbeddedNats, mesh: Mesh, tmp_path: Path
) -> None:
    docs = tmp_path / "docs"
    (docs / "billing").mkdir(parents=True)
    (docs / "hours.md").write_text("# Opening hours\n\nSupport answers from 9:00 to 17:00 on weekdays.\n")
    (docs / "billing" / "refunds.txt").write_text("Refunds reach your card within five working days.\n")
    async with agent_process(
        nats_server.url, "knowledge.agent:knowledge", HIVEWIRE_CHROMA_PATH=str(tmp_path / "chroma")
    ):
        seed = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            SEED_SCRIPT.read_text(),
            env={
                **os.environ,
                **AGENT_ENV,
                "HIVEWIRE_NATS_URL": nats_server.url,
                "SEED_TENANT": "acme",
                "SEED_PATH": str(docs),
                "SEED_WAIT": "20",
            },
            stdout=asyncio.subprocess.PIPE,
        )
        out, _ = await asyncio.wait_for(seed.communicate(), 40)
        found = await mesh.caller("acme", timeout=20).call(
            "knowledge", "search", SearchRequest(query="when can I reach support?", k=1), SearchReply
        )
    assert seed.returncode == 0
    assert out.decode().strip() == f"seed: tenant acme: 2 documents from {docs}, 2 new passages"
    assert found.passages[0].source == "hours.md"


def _certificate(
    subject: str, key: ec.EllipticCurvePrivateKey, issuer: tuple[x509.Name, ec.EllipticCurvePrivateKey] | None
) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    issuer_name, signer = issuer or (name, key)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=issuer is None, path_length=None), critical=True)
    )
    if issuer is not None:
        builder = builder.add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("hivewire-nats"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
    return builder.sign(signer, hashes.SHA256())


@pytest.fixture(scope="module")
def tls_secrets(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """What cert-manager would write: a server Secret (tls.crt, tls.key, ca.crt) and a client Secret."""
    folders = {}
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = _certificate("hivewire test CA", ca_key, None)
    for secret in ("server", "client"):
        folder = folders[secret] = tmp_path_factory.mktemp(secret)
        key = ec.generate_private_key(ec.SECP256R1())
        certificate = _certificate(f"hivewire-{secret}", key, (ca.subject, ca_key))
        (folder / "tls.crt").write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
        (folder / "tls.key").write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
        (folder / "ca.crt").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    return folders


class ChartNats:
    """nats-server run with the chart's own ``nats.conf``, on free local ports."""

    def __init__(self, url: str, monitoring: str, process: subprocess.Popen[bytes]) -> None:
        self.url, self.monitoring, self.process = url, monitoring, process


@pytest.fixture(scope="module")
def chart_nats(
    tls_secrets: dict[str, Path], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[ChartNats, list[Doc]]]:
    """The chart with NATS credentials, TLS with client certificates and KEDA, its server running here."""
    if HELM is None:
        pytest.skip("helm is not installed")
    docs = _helm(
        "nats.auth.method=password",
        "nats.auth.password=hw5e7bcd-k8s",
        "nats.tls.enabled=true",
        "nats.tls.secretName=hivewire-nats-tls",
        "nats.tls.clientSecretName=hivewire-nats-client",
        "triage.keda.enabled=true",
    )
    folder = tmp_path_factory.mktemp("chart-nats")
    config = _find(docs, "ConfigMap", "hivewire-nats-config")["data"]["nats.conf"]
    config = "host: 127.0.0.1\n" + config.replace("port: 4222", "port: -1").replace(
        "http_port: 8222", "http_port: -1"
    ).replace("/data/jetstream", str(folder / "jetstream")).replace(
        "/etc/nats/tls", str(tls_secrets["server"])
    )
    (folder / "nats.conf").write_text(config)
    # The container's environment: its pod name and the Secret the StatefulSet loads.
    (statefulset,) = [d for d in docs if d["kind"] == "StatefulSet"]
    (source,) = _container(statefulset)["envFrom"]
    secret = _find(docs, "Secret", source["secretRef"]["name"])["stringData"]
    process = subprocess.Popen(
        [str(find_nats_server()), "-c", str(folder / "nats.conf"), "--ports_file_dir", str(folder)],
        env={**os.environ, "SERVER_NAME": "hivewire-nats-0", **secret},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while not (ports := list(folder.glob("*.ports"))) or not ports[0].read_text().endswith("}"):
            assert process.poll() is None, "nats-server refused the chart's configuration"
            assert time.monotonic() < deadline, "nats-server did not start within 10 s"
            time.sleep(0.02)
        found = json.loads(ports[0].read_text())
        yield ChartNats(found["nats"][0], found["monitoring"][0], process), docs
    finally:
        process.terminate()
        process.wait(10)


def _chart_settings(
    docs: list[Doc], server: ChartNats, tls_secrets: dict[str, Path], **overrides: object
) -> AgentSettings:
    """An agent's settings as the chart gives them: its -env ConfigMap and the Secrets it loads, with
    the mounted TLS files where this test keeps them."""
    gateway = _container(_find(docs, "Deployment", "hivewire-gateway"))
    env = dict(_environment(docs, gateway))
    for source in gateway["envFrom"]:
        if "secretRef" in source:
            env.update(_find(docs, "Secret", source["secretRef"]["name"])["stringData"])
    mounted = {
        "ca.crt": tls_secrets["server"] / "ca.crt",
        "client.crt": tls_secrets["client"] / "tls.crt",
        "client.key": tls_secrets["client"] / "tls.key",
    }
    values: dict[str, object] = {
        key.removeprefix("HIVEWIRE_").lower(): mounted.get(Path(value).name, value) if "TLS" in key else value
        for key, value in {**env, **AGENT_ENV}.items()
        if key.startswith("HIVEWIRE_")
    }
    # The chart's URL names the Service; here the server is on this machine.
    assert values["nats_url"] == "tls://hivewire-nats:4222"
    values.update(nats_url=server.url.replace("nats://", "tls://"), _env_file=None, **overrides)
    return AgentSettings(**values)  # type: ignore[arg-type]


@needs_helm
async def test_the_charts_nats_takes_its_credentials_and_certificates_and_shows_keda_the_backlog(
    chart_nats: tuple[ChartNats, list[Doc]], tls_secrets: dict[str, Path]
) -> None:
    server, docs = chart_nats
    settings = _chart_settings(docs, server, tls_secrets)
    bus = await Bus.connect(settings, name="chart-test")
    try:
        # A replica creates its durable consumer; then tasks queue up with no replica running.
        async with AgentRuntime(jobs, bus, settings):
            pass
        mesh = await Mesh.open(bus, settings)
        for n in range(3):
            await mesh.tasks.submit("acme", "jobs", "work", Job(n=n))
    finally:
        await bus.close()
    # What KEDA's nats-jetstream scaler asks the monitoring port, with the chart's trigger metadata.
    (scaled,) = [d for d in docs if d["kind"] == "ScaledObject"]
    lag = scaled["spec"]["triggers"][0]["metadata"]
    url = f"{server.monitoring}/jsz?acc={lag['account']}&consumers=true&config=true"
    async with httpx.AsyncClient(timeout=5) as http:
        report = (await http.get(url)).raise_for_status().json()
    (account,) = [a for a in report["account_details"] if a["name"] == lag["account"]]
    (stream,) = [s for s in account["stream_detail"] if s["name"] == lag["stream"]]
    (consumer,) = [c for c in stream["consumer_detail"] if c["name"] == subjects.task_consumer("jobs")]
    assert consumer["num_pending"] + consumer["num_ack_pending"] == 3


@needs_helm
@pytest.mark.parametrize(
    ("overrides", "error"),
    [
        ({"nats_password": "wrong"}, AuthError),
        ({"nats_tls_cert_file": None, "nats_tls_key_file": None}, ConnectError),
    ],
    ids=["wrong password", "no client certificate"],
)
async def test_the_charts_nats_refuses_clients_without_its_credentials_or_certificate(
    chart_nats: tuple[ChartNats, list[Doc]],
    tls_secrets: dict[str, Path],
    overrides: dict[str, object],
    error: type[Exception],
) -> None:
    server, docs = chart_nats
    settings = _chart_settings(docs, server, tls_secrets, nats_initial_connect_timeout=1, **overrides)
    with pytest.raises(error):
        await Bus.connect(settings, name="chart-test")
