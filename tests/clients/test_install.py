"""``pip install ./clients/python[langchain]`` into a fresh venv: the client and its LangChain
retriever work without any of the server's dependencies (PyPI or pip's cache supplies
httpx, pydantic and langchain-core)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

CLIENT = Path(__file__).resolve().parents[2] / "clients" / "python"
SERVER_ONLY = ["fastapi", "celery", "qdrant_client", "qdrant_edge", "onnxruntime", "redis", "mcp"]

CHECK = f"""
import importlib.util
import sieve_client, sieve_client.langchain
from sieve_client.langchain import SieveRetriever
retriever = SieveRetriever(collection="sample", api_url="http://127.0.0.1:9", top_n=2)
present = [m for m in {SERVER_ONLY!r} if importlib.util.find_spec(m) is not None]
assert not present, present
print("ok", sieve_client.SieveClient.__name__, retriever.top_n)
"""


def test_the_client_installs_alone_with_its_langchain_extra(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    py = venv / "bin" / "python"
    pip = subprocess.run(
        [
            str(py),
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            f"{CLIENT}[langchain]",
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    assert pip.returncode == 0, pip.stderr[-2000:]
    out = subprocess.run(
        [str(py), "-W", "error", "-c", CHECK],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["ok", "SieveClient", "2"]
