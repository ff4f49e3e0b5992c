"""Kubernetes deploys the whole mesh the way ``hivewire up`` runs it: one Deployment per component.

The manifests in ``k8s/`` and the Helm chart's output (``helm`` comes with the dev extra on
x86-64 Linux) are read as YAML and checked for what an operator relies on: each component
runs the image with its ``hivewire`` command, reaches NATS, asks for resources, drains
before it is killed, and the gateway is probed on ``/healthz`` and ``/readyz``. Nothing
here needs a cluster or the network.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from agents import Mesh
from bus import EmbeddedNats
from gateway.up import APPS
from knowledge.agent import SearchReply, SearchRequest
from tests.processes import AGENT_ENV, agent_process

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


def _helm(*settings: str) -> list[Doc]:
    assert HELM is not None
    result = subprocess.run(
        [HELM, "template", "hivewire", str(CHART), *(arg for s in settings for arg in ("--set", s))],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    return _documents(result.stdout)


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
    _check_mesh(docs, lambda component: component, nats_url="nats://nats:4222")
    _check_knowledge_embedded(docs, lambda component: component)
    for component, replicas in REPLICAS.items():
        assert _find(docs, "Deployment", component)["spec"]["replicas"] == replicas
    assert _find(docs, "ConfigMap", "hivewire-env")["data"]["HIVEWIRE_REDIS_URL"] == "redis://redis:6379/0"
    assert _find(docs, "Service", "redis")["spec"]["ports"][0]["port"] == 6379
    for component in COMPONENTS:
        sources = _container(_find(docs, "Deployment", component))["envFrom"]
        assert {"secretRef": {"name": "hivewire-llm", "optional": True}} in sources, component


def test_k8s_jobs_create_a_key_and_seed_through_the_knowledge_agent() -> None:
    (key_job,) = _documents((K8S / "jobs" / "create-key.yaml").read_text())
    assert _container(key_job)["args"][:4] == ["keys", "create", "--tenant", "demo"]
    (seed_job,) = _documents((K8S / "jobs" / "seed-knowledge.yaml").read_text())
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
def test_the_helm_chart_passes_helm_lint_strict() -> None:
    result = subprocess.run([HELM, "lint", "--strict", str(CHART)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 chart(s) failed" in result.stdout


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
