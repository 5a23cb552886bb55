"""infra/Dockerfile and .dockerignore."""

from __future__ import annotations

import pytest

from tests.infra.support import REPO, dockerfile_problems

DOCKERFILE = REPO / "infra" / "Dockerfile"


def test_dockerfile_is_multi_stage_non_root_and_locked() -> None:
    assert dockerfile_problems(DOCKERFILE.read_text(encoding="utf-8")) == []


@pytest.mark.parametrize(
    ("sample", "problem"),
    [
        ("FROM python:3.11-slim\nRUN uv sync --frozen\nUSER 10001\n", "not multi-stage"),
        (
            "FROM python:latest AS b\nRUN uv sync --frozen\nFROM python\nUSER 1\n",
            "is not pinned",
        ),
        ("FROM a:1 AS b\nRUN uv sync --frozen\nFROM a:1\n", "sets no USER"),
        ("FROM a:1 AS b\nRUN uv sync --frozen\nFROM a:1\nUSER root\n", "runs as 'root'"),
        ("FROM a:1 AS b\nUSER 1\nRUN uv sync\nFROM a:1\nUSER 1\n", "uv sync --frozen"),
    ],
)
def test_dockerfile_check_can_fail(sample: str, problem: str) -> None:
    assert any(problem in p for p in dockerfile_problems(sample)), dockerfile_problems(sample)


def test_runtime_stage_holds_only_the_venv_and_no_build_tools() -> None:
    text = DOCKERFILE.read_text(encoding="utf-8")
    runtime = text.split("AS runtime", 1)[1]
    assert "COPY --from=builder" in runtime
    assert "/app/.venv" in runtime
    assert "uv" not in runtime.replace("UV_", "").split()  # uv stays in the builder
    assert "PYTHONDONTWRITEBYTECODE=1" in runtime
    assert "UV_PYTHON_DOWNLOADS=never" in text
    assert "--no-dev" in text
    # The uid the k8s securityContext uses, and a sieve-owned blobs directory.
    assert "--uid 10001" in runtime
    assert "USER 10001" in runtime
    assert "chown -R sieve:sieve /data" in runtime


def test_dockerignore_keeps_the_context_small() -> None:
    lines = {
        line.strip().rstrip("/")
        for line in (REPO / ".dockerignore").read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    }
    assert {".git", ".venv", ".tools", "data", ".mypy_cache", ".pytest_cache"} <= lines
    assert ".ruff_cache" in lines
    assert "**/__pycache__" in lines
    # What the build copies must not be ignored.
    text = DOCKERFILE.read_text(encoding="utf-8")
    for needed in ("pyproject.toml", "uv.lock", "README.md", "core", "services"):
        assert needed in text
        assert needed not in lines


def test_the_image_copies_every_package_the_wheel_holds() -> None:
    # A package left out installs a wheel that fails at its first import (indexing was).
    import tomllib  # noqa: PLC0415

    wheel = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    packages = wheel["tool"]["hatch"]["build"]["targets"]["wheel"]["packages"]
    text = DOCKERFILE.read_text(encoding="utf-8")
    missing = [p for p in packages if f"COPY {p} ./{p}" not in text]
    assert missing == []
