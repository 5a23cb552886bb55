"""infra/k8s: documents parse, references resolve, and the cluster shape is as promised."""

from __future__ import annotations

import copy
import shutil
import subprocess
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.infra.support import K8S_DIR, containers, load_yaml, load_yaml_docs

WORKLOADS = ("Deployment", "StatefulSet", "DaemonSet", "Job")
MANIFESTS = sorted(p for p in K8S_DIR.glob("*.yaml") if p.name != "kustomization.yaml")


@pytest.fixture(scope="module")
def docs() -> list[dict[str, Any]]:
    return [doc for path in MANIFESTS for doc in load_yaml_docs(path)]


def _one(docs: Iterable[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    found = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(found) == 1, f"{kind}/{name}: {len(found)} found"
    return found[0]


def _env(container: dict[str, Any]) -> dict[str, Any]:
    return {item["name"]: item.get("value") for item in container.get("env") or []}


def security_problems(docs: Iterable[dict[str, Any]]) -> list[str]:
    """Containers that could run as root or escalate."""
    problems: list[str] = []
    for doc in docs:
        if doc["kind"] not in WORKLOADS:
            continue
        pod = doc["spec"]["template"]["spec"]
        pod_ctx = pod.get("securityContext") or {}
        for container in containers(doc):
            ctx = {**pod_ctx, **(container.get("securityContext") or {})}
            where = f"{doc['kind']}/{doc['metadata']['name']}/{container['name']}"
            if ctx.get("runAsNonRoot") is not True or ctx.get("runAsUser", 0) == 0:
                problems.append(f"{where}: may run as root")
            if ctx.get("allowPrivilegeEscalation") is not False:
                problems.append(f"{where}: privilege escalation allowed")
            if "ALL" not in ((ctx.get("capabilities") or {}).get("drop") or []):
                problems.append(f"{where}: capabilities not dropped")
            if ":" not in container["image"] or container["image"].endswith(":latest"):
                problems.append(f"{where}: image {container['image']!r} is not pinned")
    return problems


def test_every_document_is_a_named_object(docs: list[dict[str, Any]]) -> None:
    assert docs
    for doc in docs:
        assert isinstance(doc, dict)
        assert doc.get("apiVersion"), doc
        assert doc.get("kind"), doc
        assert (doc.get("metadata") or {}).get("name"), doc


def test_kustomization_lists_every_manifest_but_the_secret_example() -> None:
    kustomization = load_yaml(K8S_DIR / "kustomization.yaml")
    listed = set(kustomization["resources"])
    for name in listed:
        assert (K8S_DIR / name).is_file(), name
    assert listed == {p.name for p in MANIFESTS} - {"secret.example.yaml"}
    assert kustomization["namespace"] == "sieve"


def test_references_resolve(docs: list[dict[str, Any]]) -> None:
    defined = {(d["kind"], d["metadata"]["name"]) for d in docs}
    for doc in docs:
        if doc["kind"] not in WORKLOADS:
            continue
        pod = doc["spec"]["template"]["spec"]
        claims = {t["metadata"]["name"] for t in doc["spec"].get("volumeClaimTemplates") or []}
        volumes = {v["name"]: v for v in pod.get("volumes") or []}
        for container in containers(doc):
            for source in container.get("envFrom") or []:
                if "configMapRef" in source:
                    assert ("ConfigMap", source["configMapRef"]["name"]) in defined
                if "secretRef" in source:
                    assert ("Secret", source["secretRef"]["name"]) in defined
            for item in container.get("env") or []:
                ref = (item.get("valueFrom") or {}).get("secretKeyRef")
                if ref:
                    secret = _one(docs, "Secret", ref["name"])
                    assert ref.get("optional") or ref["key"] in secret["stringData"]
            for mount in container.get("volumeMounts") or []:
                assert mount["name"] in volumes or mount["name"] in claims, mount
        for volume in volumes.values():
            claim = volume.get("persistentVolumeClaim")
            if claim:
                assert ("PersistentVolumeClaim", claim["claimName"]) in defined


def test_containers_run_as_non_root(docs: list[dict[str, Any]]) -> None:
    assert security_problems(docs) == []


def test_security_check_can_fail(docs: list[dict[str, Any]]) -> None:
    broken = copy.deepcopy(_one(docs, "Deployment", "sieve-api"))
    del broken["spec"]["template"]["spec"]["securityContext"]["runAsNonRoot"]
    broken["spec"]["template"]["spec"]["containers"][0]["image"] = "sieve-rag:latest"
    problems = security_problems([broken])
    assert "Deployment/sieve-api/api: may run as root" in problems
    assert "Deployment/sieve-api/api: image 'sieve-rag:latest' is not pinned" in problems


def test_api_deployment(docs: list[dict[str, Any]]) -> None:
    api = _one(docs, "Deployment", "sieve-api")
    (container,) = api["spec"]["template"]["spec"]["containers"]
    assert container["command"] == ["sieve", "api", "--host", "0.0.0.0", "--port", "8000"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["resources"]["requests"]
    assert container["resources"]["limits"]
    service = _one(docs, "Service", "sieve-api")
    assert (
        service["spec"]["selector"].items() <= api["spec"]["template"]["metadata"]["labels"].items()
    )


def test_every_container_has_resources(docs: list[dict[str, Any]]) -> None:
    for doc in docs:
        if doc["kind"] in WORKLOADS:
            for container in containers(doc):
                resources = container.get("resources") or {}
                assert resources.get("requests"), container["name"]
                assert resources.get("limits"), container["name"]


def test_blobs_are_shared_read_write_many(docs: list[dict[str, Any]]) -> None:
    pvc = _one(docs, "PersistentVolumeClaim", "sieve-blobs")
    assert pvc["spec"]["accessModes"] == ["ReadWriteMany"]
    blob_dir = _one(docs, "ConfigMap", "sieve-config")["data"]["SIEVE_INGEST_BLOB_DIR"]
    for name in ("sieve-api", "sieve-worker"):
        pod = _one(docs, "Deployment", name)["spec"]["template"]["spec"]
        volume = {v["name"]: v for v in pod["volumes"]}
        (mount,) = [m for m in pod["containers"][0]["volumeMounts"] if m["mountPath"] == blob_dir]
        assert volume[mount["name"]]["persistentVolumeClaim"]["claimName"] == "sieve-blobs"


def test_worker_autoscaler_targets_the_worker_on_the_ingest_queue(
    docs: list[dict[str, Any]],
) -> None:
    (scaler,) = [d for d in docs if d["kind"] == "ScaledObject"]
    target = scaler["spec"]["scaleTargetRef"]
    assert target.get("kind", "Deployment") == "Deployment"
    worker = _one(docs, "Deployment", target["name"])
    (container,) = worker["spec"]["template"]["spec"]["containers"]
    queues = container["command"][container["command"].index("-Q") + 1].split(",")
    lists = {t["metadata"]["listName"] for t in scaler["spec"]["triggers"] if t["type"] == "redis"}
    assert "ingest" in lists
    assert lists <= set(queues), "scaling on a queue the worker does not consume"
    assert set(queues) == {"ingest", "store_writes"}
    assert scaler["spec"]["minReplicaCount"] >= 1  # store_writes must always drain
    assert scaler["spec"]["maxReplicaCount"] > scaler["spec"]["minReplicaCount"]
    # Warm shutdown must outlast the task time limit (600 s by default).
    assert worker["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] > 600


def test_qdrant_runs_distributed_with_replication_two(docs: list[dict[str, Any]]) -> None:
    qdrant = _one(docs, "StatefulSet", "qdrant")
    assert qdrant["spec"]["replicas"] >= 3
    (container,) = qdrant["spec"]["template"]["spec"]["containers"]
    env = _env(container)
    assert env["QDRANT__CLUSTER__ENABLED"] == "true"
    assert env["QDRANT__STORAGE__COLLECTION__REPLICATION_FACTOR"] == "2"
    assert {p["containerPort"] for p in container["ports"]} >= {6333, 6335}
    headless = _one(docs, "Service", qdrant["spec"]["serviceName"])
    assert headless["spec"]["clusterIP"] == "None"
    assert headless["spec"]["publishNotReadyAddresses"] is True
    assert 6335 in {p["port"] for p in headless["spec"]["ports"]}
    script = container["args"][0]
    assert "--bootstrap" in script
    assert "qdrant-0." in script
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    # The settings point at the client Service.
    config = _one(docs, "ConfigMap", "sieve-config")["data"]
    assert config["SIEVE_QDRANT_URL"] == "http://qdrant:6333"
    _one(docs, "Service", "qdrant")


def test_redis_keeps_an_append_only_file_on_a_volume(docs: list[dict[str, Any]]) -> None:
    redis = _one(docs, "StatefulSet", "redis")
    (container,) = redis["spec"]["template"]["spec"]["containers"]
    args = " ".join(container["args"])
    assert "--appendonly yes" in args
    assert "--maxmemory-policy noeviction" in args
    (claim,) = redis["spec"]["volumeClaimTemplates"]
    assert {m["name"]: m["mountPath"] for m in container["volumeMounts"]}[
        claim["metadata"]["name"]
    ] == "/data"


def test_modelhub_has_keys_and_a_service(docs: list[dict[str, Any]]) -> None:
    hub = _one(docs, "Deployment", "sieve-modelhub")
    (container,) = hub["spec"]["template"]["spec"]["containers"]
    assert container["command"] == ["sieve", "modelhub", "--host", "0.0.0.0", "--port", "8100"]
    names = {item["name"] for item in container["env"]}
    assert "SIEVE_MODELHUB_API_KEYS" in names
    service = _one(docs, "Service", "sieve-modelhub")
    config = _one(docs, "ConfigMap", "sieve-config")["data"]
    assert config["SIEVE_MODEL_BASE_URL"] == (
        f"http://{service['metadata']['name']}:{service['spec']['ports'][0]['port']}/v1"
    )


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")
def test_kustomize_builds(tmp_path: Path) -> None:
    out = subprocess.run(
        ["kubectl", "kustomize", str(K8S_DIR)],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    built = [d for d in yaml.safe_load_all(out) if d]
    assert all(d["metadata"].get("namespace") == "sieve" for d in built if d["kind"] != "Namespace")
    assert {d["kind"] for d in built} >= {"Deployment", "StatefulSet", "ScaledObject"}
