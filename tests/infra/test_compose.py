"""docker-compose.yml: valid against the compose spec, and shaped the way operators rely on."""

from __future__ import annotations

import copy
import re
from typing import Any

# jsonschema ships no type stubs and types-jsonschema is not a dev dependency.
import jsonschema  # type: ignore[import-untyped]
import pytest

from tests.infra.support import REPO, compose_schema, interpolate, load_yaml

COMPOSE = REPO / "docker-compose.yml"
SIEVE_SERVICES = ("api", "worker", "modelhub")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    doc: dict[str, Any] = load_yaml(COMPOSE)
    return doc


@pytest.fixture(scope="module")
def validator() -> Any:
    schema = compose_schema()
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema)


def _schema_errors(validator: Any, doc: Any) -> list[str]:
    return [f"{e.json_path}: {e.message}" for e in validator.iter_errors(doc)]


def _resolved_image(image: str) -> str:
    # ${APP_IMAGE:-sieve-rag:0.1.0} -> its default, as compose would use it.
    return interpolate(image, {})


def _volume_sources(service: dict[str, Any]) -> dict[str, str]:
    """Mount target -> source for a service's volumes (short and long syntax)."""
    mounts: dict[str, str] = {}
    for volume in service.get("volumes") or []:
        if isinstance(volume, str):
            source, _, rest = volume.partition(":")
            mounts[rest.split(":")[0]] = source
        else:
            mounts[volume["target"]] = volume.get("source", "")
    return mounts


def structure_problems(doc: dict[str, Any]) -> list[str]:
    """What an operator relies on, beyond schema validity."""
    problems: list[str] = []
    services: dict[str, Any] = doc.get("services", {})
    named_volumes = set(doc.get("volumes") or {})
    for name, service in services.items():
        image = _resolved_image(str(service.get("image", "")))
        tag = image.rsplit(":", 1)[1] if ":" in image.rsplit("/", 1)[-1] else ""
        if "@sha256:" not in image and tag in ("", "latest"):
            problems.append(f"{name}: image {image!r} is not pinned")
    for name in ("qdrant", "redis", "api", "modelhub"):
        check = (services.get(name) or {}).get("healthcheck") or {}
        if not check.get("test") or check.get("disable"):
            problems.append(f"{name}: no healthcheck")
    for name in ("api", "worker"):
        depends = (services.get(name) or {}).get("depends_on") or {}
        for dep in ("qdrant", "redis"):
            entry = depends.get(dep) if isinstance(depends, dict) else None
            if not entry or entry.get("condition") != "service_healthy":
                problems.append(f"{name}: does not wait for {dep} to be healthy")
    for name, target in (("qdrant", "/qdrant/storage"), ("redis", "/data")):
        source = _volume_sources(services.get(name) or {}).get(target)
        if source not in named_volumes:
            problems.append(f"{name}: {target} is not on a named volume")
    blob_sources = set()
    for name in ("api", "worker"):
        service = services.get(name) or {}
        blob_dir = str((service.get("environment") or {}).get("SIEVE_INGEST_BLOB_DIR", ""))
        source = _volume_sources(service).get(blob_dir)
        if not blob_dir or source not in named_volumes:
            problems.append(f"{name}: SIEVE_INGEST_BLOB_DIR is not on a named volume")
        blob_sources.add(source)
    if len(blob_sources) != 1:
        problems.append("api and worker do not share one blobs volume")
    redis_command = services.get("redis", {}).get("command") or []
    if isinstance(redis_command, str):
        redis_command = redis_command.split()
    if not re.search(r"--appendonly yes\b", " ".join(map(str, redis_command))):
        problems.append("redis: AOF is off (no --appendonly yes)")
    return problems


def test_compose_file_validates_against_the_compose_spec(
    compose: dict[str, Any], validator: Any
) -> None:
    assert _schema_errors(validator, compose) == []


def test_schema_check_can_fail(compose: dict[str, Any], validator: Any) -> None:
    broken = copy.deepcopy(compose)
    broken["services"]["api"]["depends_on"]["qdrant"]["condition"] = "service_ready"
    broken["services"]["worker"]["restart_policy"] = "always"
    errors = _schema_errors(validator, broken)
    assert any("service_ready" in e for e in errors)
    assert any("restart_policy" in e for e in errors)


def test_structure_operators_rely_on(compose: dict[str, Any]) -> None:
    assert structure_problems(compose) == []


def test_structure_check_can_fail(compose: dict[str, Any]) -> None:
    broken = copy.deepcopy(compose)
    broken["services"]["qdrant"]["image"] = "qdrant/qdrant:latest"
    broken["services"]["redis"]["image"] = "redis"
    del broken["services"]["modelhub"]["healthcheck"]
    broken["services"]["worker"]["depends_on"]["redis"] = {"condition": "service_started"}
    broken["services"]["worker"]["volumes"] = ["/srv/blobs:/data/blobs"]
    broken["services"]["redis"]["command"] = ["redis-server"]
    assert sorted(structure_problems(broken)) == sorted(
        [
            "qdrant: image 'qdrant/qdrant:latest' is not pinned",
            "redis: image 'redis' is not pinned",
            "modelhub: no healthcheck",
            "worker: does not wait for redis to be healthy",
            "worker: SIEVE_INGEST_BLOB_DIR is not on a named volume",
            "api and worker do not share one blobs volume",
            "redis: AOF is off (no --appendonly yes)",
        ]
    )


def test_processes_run_the_agreed_commands(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert services["api"]["command"] == ["sieve", "api", "--host", "0.0.0.0", "--port", "8000"]
    assert services["modelhub"]["command"] == [
        "sieve",
        "modelhub",
        "--host",
        "0.0.0.0",
        "--port",
        "8100",
    ]
    worker = services["worker"]["command"]
    assert worker[:4] == ["celery", "-A", "services.worker.app", "worker"]
    queues = worker[worker.index("-Q") + 1].split(",")
    assert set(queues) == {"ingest", "store_writes"}  # the store is a server here
    assert worker[worker.index("--pool") + 1] == "prefork"


def test_compose_mode_settings(compose: dict[str, Any]) -> None:
    api = compose["services"]["api"]["environment"]
    worker = compose["services"]["worker"]["environment"]
    assert api["SIEVE_QDRANT_BACKEND"] == "server"
    assert api["SIEVE_QDRANT_URL"] == "http://qdrant:6333"
    assert api["SIEVE_REDIS_URL"] == "redis://redis:6379/0"
    assert api["SIEVE_API_HOST"] == "0.0.0.0"
    # Off loopback the API needs keys: compose must refuse to start without them.
    assert api["SIEVE_API_KEYS"].startswith("${SIEVE_API_KEYS:?")
    assert api["SIEVE_MODEL_BASE_URL"] == "${SIEVE_MODEL_BASE_URL:-http://modelhub:8100/v1}"
    shared = (
        "SIEVE_QDRANT_BACKEND",
        "SIEVE_QDRANT_URL",
        "SIEVE_REDIS_URL",
        "SIEVE_INGEST_BLOB_DIR",
        "SIEVE_MODEL_BASE_URL",
        "SIEVE_MODEL_API_KEY",
        "SIEVE_MODEL_EMBEDDING_MODEL",
    )
    assert {k: api[k] for k in shared} == {k: worker[k] for k in shared}
    # Without keys the hub would refuse a non-loopback bind.
    hub = compose["services"]["modelhub"]["environment"]
    assert hub["SIEVE_MODELHUB_API_KEYS"].startswith("${SIEVE_MODELHUB_API_KEYS:?")


def test_sieve_services_share_one_image_built_from_infra(compose: dict[str, Any]) -> None:
    images = {compose["services"][name]["image"] for name in SIEVE_SERVICES}
    assert len(images) == 1
    for name in SIEVE_SERVICES:
        build = compose["services"][name]["build"]
        assert build["dockerfile"] == "infra/Dockerfile"
        assert (REPO / build["context"] / build["dockerfile"]).is_file()
        assert compose["services"][name].get("user") in (None, "10001", "10001:10001")


def test_qdrant_image_matches_the_client(compose: dict[str, Any]) -> None:
    from importlib.metadata import version  # noqa: PLC0415

    tag = compose["services"]["qdrant"]["image"].rsplit(":", 1)[1]
    match = re.match(r"v(\d+)\.(\d+)\.\d+", tag)
    assert match, f"qdrant tag {tag!r} is not a version"
    client_major, client_minor, *_ = (int(p) for p in version("qdrant-client").split("."))
    server = (int(match.group(1)), int(match.group(2)))
    # qdrant_client.common.version_check: same major, minor within one.
    assert server[0] == client_major
    assert abs(server[1] - client_minor) <= 1


def test_prometheus_file_mounted_exists(compose: dict[str, Any]) -> None:
    prometheus = compose["services"]["prometheus"]
    assert prometheus["profiles"] == ["monitoring"]
    mounted = [v.split(":")[0] for v in prometheus["volumes"] if v.startswith("./")]
    for path in mounted:
        assert (REPO / path).is_file()
