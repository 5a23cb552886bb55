"""infra/prometheus: the configs parse and scrape the api's /metrics."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.infra.support import REPO, load_yaml, load_yaml_docs

PROMETHEUS = REPO / "infra" / "prometheus"


def api_job_problems(config: Any) -> list[str]:
    """Why a Prometheus config would not scrape the api's /metrics on port 8000."""
    if not isinstance(config, dict) or not isinstance(config.get("scrape_configs"), list):
        return ["no scrape_configs"]
    jobs = {job.get("job_name"): job for job in config["scrape_configs"]}
    if len(jobs) != len(config["scrape_configs"]):
        return ["duplicate job names"]
    job = jobs.get("sieve-api")
    if job is None:
        return ["no sieve-api job"]
    problems: list[str] = []
    path = job.get("metrics_path", "/metrics")
    relabels = job.get("relabel_configs") or []
    path_from_annotation = any(r.get("target_label") == "__metrics_path__" for r in relabels)
    if path != "/metrics" and not path_from_annotation:
        problems.append(f"sieve-api scrapes {path!r}")
    ports = {str(c.get("port")) for c in job.get("dns_sd_configs") or []}
    ports |= {
        t.rsplit(":", 1)[1] for c in job.get("static_configs") or [] for t in c.get("targets", [])
    }
    if "8000" not in ports and not job.get("kubernetes_sd_configs"):
        problems.append("sieve-api targets no port 8000")
    return problems


def test_compose_config_scrapes_every_api_replica() -> None:
    config = load_yaml(PROMETHEUS / "prometheus.yml")
    assert api_job_problems(config) == []
    (job,) = [j for j in config["scrape_configs"] if j["job_name"] == "sieve-api"]
    assert job["dns_sd_configs"][0]["names"] == ["api"]  # the compose service name


def test_k8s_config_scrapes_annotated_api_pods() -> None:
    config = load_yaml(PROMETHEUS / "prometheus-k8s.yml")
    assert api_job_problems(config) == []
    (job,) = [j for j in config["scrape_configs"] if j["job_name"] == "sieve-api"]
    keep = [r["regex"] for r in job["relabel_configs"] if r.get("action") == "keep"]
    assert "sieve-api" in keep
    api = next(
        doc for doc in load_yaml_docs(REPO / "infra/k8s/api.yaml") if doc["kind"] == "Deployment"
    )
    annotations = api["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/path"] == "/metrics"
    assert annotations["prometheus.io/port"] == "8000"


@pytest.mark.parametrize(
    ("config", "problem"),
    [
        ({}, "no scrape_configs"),
        ({"scrape_configs": [{"job_name": "qdrant"}]}, "no sieve-api job"),
        (
            {
                "scrape_configs": [
                    {
                        "job_name": "sieve-api",
                        "metrics_path": "/stats",
                        "static_configs": [{"targets": ["api:9000"]}],
                    }
                ]
            },
            "sieve-api scrapes '/stats'",
        ),
    ],
)
def test_scrape_check_can_fail(config: dict[str, Any], problem: str) -> None:
    assert problem in api_job_problems(config)


@pytest.mark.parametrize("path", sorted(PROMETHEUS.glob("*.yml")), ids=lambda p: Path(p).name)
def test_every_prometheus_file_parses(path: Path) -> None:
    config = load_yaml(path)
    assert config["global"]["scrape_interval"]
    assert all(job["job_name"] for job in config["scrape_configs"])
