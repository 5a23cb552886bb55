"""Every SIEVE_* variable the deployment files set or mention is a real setting.

A typo (``SIEVE_QDRANT_URI``) would be ignored silently by pydantic-settings at run time;
here it fails. The files' values must also build every settings class, as the processes do.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel
from pydantic_settings import BaseSettings, SettingsConfigDict

from core.settings import LogSettings, ModelSettings, StoreBackend, StoreSettings
from tests.infra.support import (
    K8S_DIR,
    REPO,
    env_file_assignments,
    interpolate,
    load_yaml,
    load_yaml_docs,
    mentioned_sieve_names,
    settings_classes,
    settings_env_names,
    unknown_names,
)

COMPOSE = REPO / "docker-compose.yml"
ENV_EXAMPLES = [REPO / ".env.example", REPO / "infra" / "ionos.env.example"]
FILES = [
    COMPOSE,
    *ENV_EXAMPLES,
    REPO / "infra" / "Dockerfile",
    *sorted(K8S_DIR.glob("*.yaml")),
    *sorted((REPO / "infra" / "prometheus").glob("*.yml")),
]

# Stand-ins for the secrets an operator puts in .env / the Secret (valid, not placeholders).
SAMPLE_SECRETS = {
    "SIEVE_API_KEYS": '{"team-a": "a-key-for-team-a-0123456789"}',
    "SIEVE_MODELHUB_API_KEYS": "hub-key-0123456789abcdef",
    "SIEVE_MODEL_API_KEY": "hub-key-0123456789abcdef",
    "SIEVE_QDRANT_API_KEY": "qdrant-key-0123456789abcdef",
}


@pytest.fixture(scope="module")
def known() -> frozenset[str]:
    return settings_env_names()


def _compose() -> dict[str, Any]:
    doc: dict[str, Any] = load_yaml(COMPOSE)
    return doc


def _compose_set_names() -> set[str]:
    names: set[str] = set()
    for service in _compose()["services"].values():
        env = service.get("environment") or {}
        if isinstance(env, list):
            env = dict(item.partition("=")[::2] for item in env)
        names.update(env)
        for value in env.values():
            names.update(mentioned_sieve_names(str(value)))
    return names


def _k8s_set_names() -> set[str]:
    names: set[str] = set()
    for path in K8S_DIR.glob("*.yaml"):
        for doc in load_yaml_docs(path):
            if doc.get("kind") in ("ConfigMap", "Secret"):
                names.update(doc.get("data") or {})
                names.update(doc.get("stringData") or {})
            spec = (doc.get("spec") or {}).get("template", {}).get("spec") or {}
            for container in spec.get("containers") or []:
                names.update(item["name"] for item in container.get("env") or [])
    return names


# ---------------------------------------------------------------- the checker itself


def test_settings_names_are_introspected(known: frozenset[str]) -> None:
    assert len(settings_classes()) >= 7
    assert {"SIEVE_QDRANT_URL", "SIEVE_REDIS_URL", "SIEVE_API_KEYS"} <= known
    assert {"SIEVE_INGEST_BLOB_DIR", "SIEVE_MODELHUB_API_KEYS", "SIEVE_WORKER_CONCURRENCY"} <= known
    # An alias replaces prefix + field name (pydantic-settings reads the alias only).
    assert "SIEVE_LOG_JSON" in known
    assert "SIEVE_LOG_JSON_FORMAT" not in known


def test_checker_catches_made_up_names(known: frozenset[str]) -> None:
    sample = """
services:
  api:
    environment:
      SIEVE_QDRANT_URL: http://qdrant:6333
      SIEVE_QDRANT_URI: http://typo:6333        # typo
      SIEVE_LOG_JSON_FORMAT: "true"             # the alias is SIEVE_LOG_JSON
      SIEVE_MADE_UP: "1"
      QDRANT__CLUSTER__ENABLED: "true"          # not ours: ignored
"""
    assert unknown_names(mentioned_sieve_names(sample), known) == {
        "SIEVE_QDRANT_URI",
        "SIEVE_LOG_JSON_FORMAT",
        "SIEVE_MADE_UP",
    }


def test_checker_covers_classes_added_later() -> None:
    class ExtraSettings(BaseSettings):
        model_config = SettingsConfigDict(env_prefix="SIEVE_EXTRA_")
        thing: int = 1

    names = settings_env_names([ExtraSettings])
    assert names == {"SIEVE_EXTRA_THING"}
    assert unknown_names({"SIEVE_EXTRA_THING", "SIEVE_EXTRA_THINGS"}, names) == {
        "SIEVE_EXTRA_THINGS"
    }


def test_interpolation_is_resolved_like_compose() -> None:
    env = {"SET": "v", "EMPTY": ""}
    assert interpolate("${SET:-d}/${UNSET:-d}/${EMPTY:-d}/${EMPTY-d}", env) == "v/d/d/"
    assert interpolate("$${SET} ${SET}", env) == "${SET} v"
    with pytest.raises(KeyError, match="UNSET"):
        interpolate("${UNSET:?set it}", env)
    with pytest.raises(KeyError, match="EMPTY"):
        interpolate("${EMPTY:?set it}", env)


# ---------------------------------------------------------------- the real files


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(Path(p).relative_to(REPO)))
def test_every_sieve_name_mentioned_is_a_setting(path: Path, known: frozenset[str]) -> None:
    text = path.read_text(encoding="utf-8")
    assert unknown_names(mentioned_sieve_names(text), known) == set()


def test_names_set_by_compose_and_k8s_are_settings(known: frozenset[str]) -> None:
    compose_names = _compose_set_names()
    k8s_names = _k8s_set_names()
    # The structured walk really finds the assignments (so the check above is not vacuous).
    assert {"SIEVE_QDRANT_URL", "SIEVE_API_KEYS", "SIEVE_MODELHUB_API_KEYS"} <= compose_names
    assert {"SIEVE_QDRANT_URL", "SIEVE_API_KEYS", "SIEVE_MODELHUB_API_KEYS"} <= k8s_names
    assert unknown_names(compose_names, known) == set()
    assert unknown_names(k8s_names, known) == set()


@pytest.mark.parametrize("path", ENV_EXAMPLES, ids=lambda p: p.name)
def test_env_example_assignments_are_settings(path: Path, known: frozenset[str]) -> None:
    names = set(env_file_assignments(path.read_text(encoding="utf-8"), commented=True))
    assert any(name.startswith("SIEVE_") for name in names)
    assert unknown_names(names, known) == set()


# ---------------------------------------------------------------- values build the settings


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in list(os.environ):
        if name.upper().startswith("SIEVE_"):
            monkeypatch.delenv(name)
    return monkeypatch


def _build_all(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> dict[str, BaseModel]:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    built: dict[str, BaseModel] = {cls.__name__: cls() for cls in settings_classes()}
    for name in env:
        monkeypatch.delenv(name)
    return built


def _compose_env(service: str, dotenv: dict[str, str]) -> dict[str, str]:
    raw = _compose()["services"][service].get("environment") or {}
    return {k: interpolate(str(v), dotenv) for k, v in raw.items()}


@pytest.mark.parametrize("service", ["api", "worker", "modelhub"])
def test_compose_environment_builds_every_settings_class(
    service: str, clean_env: pytest.MonkeyPatch
) -> None:
    dotenv = env_file_assignments((REPO / ".env.example").read_text(encoding="utf-8"))
    dotenv.update(SAMPLE_SECRETS)
    built = _build_all(_compose_env(service, dotenv), clean_env)
    if service != "modelhub":
        store = built["StoreSettings"]
        assert isinstance(store, StoreSettings)
        assert store.backend is StoreBackend.SERVER
        model = built["ModelSettings"]
        assert isinstance(model, ModelSettings)
        assert str(model.base_url) == "http://modelhub:8100/v1"
    log = built["LogSettings"]
    assert isinstance(log, LogSettings)
    assert log.json_format is True


def test_compose_refuses_to_start_without_keys() -> None:
    dotenv = env_file_assignments((REPO / ".env.example").read_text(encoding="utf-8"))
    dotenv.update(SAMPLE_SECRETS)
    del dotenv["SIEVE_API_KEYS"]
    with pytest.raises(KeyError, match="SIEVE_API_KEYS"):
        _compose_env("api", dotenv)
    # The example file leaves the secrets empty: `:?` refuses empty values too.
    empty = env_file_assignments((REPO / ".env.example").read_text(encoding="utf-8"))
    with pytest.raises(KeyError):
        _compose_env("api", empty)


def test_ionos_env_file_switches_api_and_worker_to_ionos(clean_env: pytest.MonkeyPatch) -> None:
    dotenv = env_file_assignments((REPO / ".env.example").read_text(encoding="utf-8"))
    ionos = env_file_assignments((REPO / "infra" / "ionos.env.example").read_text(encoding="utf-8"))
    assert ionos["SIEVE_MODEL_BASE_URL"] == "https://openai.inference.de-txl.ionos.com/v1"
    assert ionos["SIEVE_MODEL_EMBEDDING_MODEL"] == "BAAI/bge-m3"
    assert ionos["SIEVE_MODEL_RERANK_MODEL"] == "Qwen/Qwen3-VL-Reranker-8B"
    assert "SIEVE_MODEL_API_KEY" in ionos
    merged = {**dotenv, **SAMPLE_SECRETS, **ionos, "SIEVE_MODEL_API_KEY": "eyJhbGciOi.sample.jwt"}
    for service in ("api", "worker"):
        model = _build_all(_compose_env(service, merged), clean_env)["ModelSettings"]
        assert isinstance(model, ModelSettings)
        assert model.base_url.host == "openai.inference.de-txl.ionos.com"
        assert model.embedding_model == "BAAI/bge-m3"
        assert model.rerank_model == "Qwen/Qwen3-VL-Reranker-8B"


def _k8s_env(deployment: str) -> dict[str, str]:
    docs = [doc for path in K8S_DIR.glob("*.yaml") for doc in load_yaml_docs(path)]
    config = {
        doc["metadata"]["name"]: {**doc.get("data", {}), **doc.get("stringData", {})}
        for doc in docs
        if doc["kind"] in ("ConfigMap", "Secret")
    }
    secret = {k: v or SAMPLE_SECRETS.get(k, v) for k, v in config["sieve-secrets"].items()}
    config["sieve-secrets"] = secret
    (workload,) = [
        d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"] == deployment
    ]
    env: dict[str, str] = {}
    for container in workload["spec"]["template"]["spec"]["containers"]:
        for source in container.get("envFrom") or []:
            ref = source.get("configMapRef") or source.get("secretRef")
            env.update(config[ref["name"]])
        for item in container.get("env") or []:
            if "value" in item:
                env[item["name"]] = str(item["value"])
            elif "secretKeyRef" in item.get("valueFrom", {}):
                ref = item["valueFrom"]["secretKeyRef"]
                env[item["name"]] = config[ref["name"]][ref["key"]]
    return {k: str(v) for k, v in env.items() if k.startswith("SIEVE_")}


@pytest.mark.parametrize("deployment", ["sieve-api", "sieve-worker", "sieve-modelhub"])
def test_k8s_environment_builds_every_settings_class(
    deployment: str, clean_env: pytest.MonkeyPatch
) -> None:
    env = _k8s_env(deployment)
    assert env, "no SIEVE_* settings reach the container"
    built = _build_all(env, clean_env)
    if deployment != "sieve-modelhub":
        store = built["StoreSettings"]
        assert isinstance(store, StoreSettings)
        assert store.backend is StoreBackend.SERVER
