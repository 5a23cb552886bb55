"""Settings refusal, key and rate-limit guards, model pins, and the CLI surface."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr, ValidationError
from typer.testing import CliRunner

from core.settings import ModelHubSettings, ModelKind, RegisteredModel
from services.cli.main import app as cli
from services.modelhub.errors import ModelIntegrityError
from services.modelhub.guard import KeyRing, TokenBucket
from services.modelhub.registry import (
    BUNDLED_PINS,
    bundled_data_dir,
    bundled_models,
    default_inference_threads,
    default_intra_op_threads,
    load_models,
    model_specs,
    sha256_file,
    verify_files,
)

KEY = "k" * 20


def test_open_mode_only_on_loopback(monkeypatch: pytest.MonkeyPatch) -> None:
    assert ModelHubSettings().open_mode
    with pytest.raises(ValidationError, match="not loopback"):
        ModelHubSettings(host="0.0.0.0")
    assert not ModelHubSettings(host="0.0.0.0", api_keys=(SecretStr(KEY),)).open_mode


@pytest.mark.parametrize("key", ["changeme", "<token>", "short-key"])
def test_placeholder_or_short_keys_are_refused(key: str) -> None:
    with pytest.raises(ValidationError):
        ModelHubSettings(api_keys=(SecretStr(key),))


def test_keys_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SIEVE_MODELHUB_API_KEYS", f"{KEY}a, {KEY}b")
    assert [k.get_secret_value() for k in ModelHubSettings().api_keys] == [KEY + "a", KEY + "b"]
    monkeypatch.setenv("SIEVE_MODELHUB_API_KEYS", f'["{KEY}c"]')
    assert [k.get_secret_value() for k in ModelHubSettings().api_keys] == [KEY + "c"]


def test_registered_models_must_exist_and_be_unique(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match=r"no model\.onnx"):
        RegisteredModel(id="x/y", kind=ModelKind.EMBED, path=tmp_path)
    path = bundled_data_dir() / "bge_small_en"
    spec = RegisteredModel(id="x/y", kind=ModelKind.EMBED, path=path)
    with pytest.raises(ValidationError, match="twice"):
        ModelHubSettings(models=(spec, spec))
    clash = RegisteredModel(id="BAAI/bge-small-en-v1.5", kind=ModelKind.EMBED, path=path)
    with pytest.raises(ModelIntegrityError, match="unique"):
        model_specs(ModelHubSettings(models=(clash,)))
    with pytest.raises(ValidationError, match="whitespace"):
        RegisteredModel(id="x y", kind=ModelKind.EMBED, path=path)


def test_registered_models_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    path = bundled_data_dir() / "reranker_en"
    monkeypatch.setenv(
        "SIEVE_MODELHUB_MODELS",
        f'[{{"id": "acme/rr", "kind": "rerank", "path": "{path}", "context_tokens": 32768}}]',
    )
    monkeypatch.setenv("SIEVE_MODELHUB_BUNDLED_MODELS", "false")
    [spec] = model_specs(ModelHubSettings())
    assert (spec.id, spec.kind, spec.pair_budget) == ("acme/rr", ModelKind.RERANK, 32_768)


def test_shipped_files_match_the_pins() -> None:
    for spec in bundled_models():
        verify_files(spec)
        assert set(spec.sha256) == {"model.onnx", "tokenizer.json"}
    path = bundled_data_dir() / "reranker_en" / "tokenizer.json"
    assert sha256_file(path) == BUNDLED_PINS["reranker_en"]["tokenizer.json"]


def test_an_altered_file_refuses_to_load() -> None:
    spec = bundled_models()[1].model_copy(update={"sha256": {"tokenizer.json": "0" * 64}})
    with pytest.raises(ModelIntegrityError, match=r"tokenizer\.json"):
        load_models([spec], intra_op_threads=1)
    missing = bundled_models()[1].model_copy(update={"sha256": {"absent.bin": "0" * 64}})
    with pytest.raises(ModelIntegrityError, match="missing"):
        verify_files(missing)


def test_thread_defaults() -> None:
    assert default_inference_threads(2) == 2
    assert default_intra_op_threads(2, cpus=2) == 1
    assert default_inference_threads(16) == 4
    assert default_intra_op_threads(4, cpus=16) == 4


def test_key_ring_is_exact() -> None:
    ring = KeyRing([SecretStr(KEY), SecretStr(KEY + "2")])
    assert ring.allows(f"Bearer {KEY}")
    assert ring.allows(f"bearer {KEY}2")
    assert not ring.allows(f"Bearer {KEY}3")
    assert not ring.allows(f"Basic {KEY}")
    assert not ring.allows(None)
    assert KeyRing([]).allows(None)


def test_token_bucket() -> None:
    now = [0.0]
    bucket = TokenBucket(2.0, 3, clock=lambda: now[0])
    assert [bucket.acquire() for _ in range(3)] == [0.0, 0.0, 0.0]
    assert bucket.acquire() == pytest.approx(0.5)
    now[0] += 0.5
    assert bucket.acquire() == 0.0


def test_cli_is_a_multi_command_app() -> None:
    result = CliRunner().invoke(cli, ["--help"])
    assert result.exit_code == 0
    assert "modelhub" in result.output
    result = CliRunner().invoke(cli, ["modelhub", "--host", "0.0.0.0"])
    assert result.exit_code == 2
    assert "not loopback" in result.output


@pytest.mark.slow
def test_sieve_modelhub_serves_over_http(unused_port: int) -> None:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "services.cli.main",
            "modelhub",
            "--port",
            str(unused_port),
            "--api-key",
            KEY,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        url = f"http://127.0.0.1:{unused_port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(url + "/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert proc.poll() is None, "the hub exited"
            assert time.monotonic() < deadline, "the hub did not start"
            time.sleep(0.1)
        assert httpx.get(url + "/v1/models").status_code == 401
        models = httpx.get(url + "/v1/models", headers={"Authorization": f"Bearer {KEY}"})
        assert models.status_code == 200
        assert len(models.json()["data"]) == 3  # embed, rerank, late interaction
    finally:
        proc.terminate()
        proc.wait(timeout=15)
        assert proc.stderr is not None
        proc.stderr.close()
