"""Checkers for the deployment files, shared by the infra tests.

Each checker returns a list of problems (empty when the input is right), so a test can
run it on the real file and on a small broken sample, proving the check can fail.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator, Mapping
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from pydantic_settings import BaseSettings

import core.settings

__all__ = [
    "K8S_DIR",
    "REPO",
    "compose_schema",
    "containers",
    "dockerfile_problems",
    "env_file_assignments",
    "interpolate",
    "load_yaml",
    "load_yaml_docs",
    "mentioned_sieve_names",
    "settings_classes",
    "settings_env_names",
    "unknown_names",
]

REPO = Path(__file__).resolve().parents[2]
K8S_DIR = REPO / "infra" / "k8s"

_SIEVE_NAME = re.compile(r"\bSIEVE_[A-Z0-9_]*[A-Z0-9]\b")
_ENV_LINE = re.compile(r"^\s*(?:#\s*)?([A-Za-z_][A-Za-z0-9_]*)=(.*)$")
_INTERPOLATION = re.compile(
    r"\$\$|\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?+])(?P<arg>[^}]*))?\}"
)


# ---------------------------------------------------------------- settings


def settings_classes() -> list[type[BaseSettings]]:
    """Every ``BaseSettings`` subclass defined in ``core.settings`` (new ones included)."""
    return [
        obj
        for obj in vars(core.settings).values()
        if isinstance(obj, type)
        and issubclass(obj, BaseSettings)
        and obj is not BaseSettings
        and obj.__module__ == core.settings.__name__
    ]


def _aliases(field: Any) -> list[str]:
    names: list[str] = []
    for alias in (field.alias, field.validation_alias):
        if isinstance(alias, str):
            names.append(alias)
        elif alias is not None and hasattr(alias, "choices"):
            names.extend(choice for choice in alias.choices if isinstance(choice, str))
    return names


def settings_env_names(classes: Iterable[type[BaseSettings]] | None = None) -> frozenset[str]:
    """The environment variables the settings classes read, upper-cased.

    pydantic-settings reads ``env_prefix + field name``; a field with an alias is read
    from the alias alone (``LogSettings.json_format`` from ``SIEVE_LOG_JSON``).
    """
    names: set[str] = set()
    for cls in settings_classes() if classes is None else classes:
        prefix = str(cls.model_config.get("env_prefix", ""))
        for field_name, field in cls.model_fields.items():
            aliases = _aliases(field)
            if aliases:
                names.update(alias.upper() for alias in aliases)
            else:
                names.add(f"{prefix}{field_name}".upper())
    return frozenset(names)


def unknown_names(names: Iterable[str], known: frozenset[str]) -> set[str]:
    """The ``SIEVE_*`` names among ``names`` that no settings class reads."""
    return {name for name in names if name.startswith("SIEVE_") and name.upper() not in known}


def mentioned_sieve_names(text: str) -> set[str]:
    """Every ``SIEVE_*`` name written anywhere in a file, comments included."""
    return set(_SIEVE_NAME.findall(text))


# ---------------------------------------------------------------- files


def load_yaml(path: Path) -> Any:
    """One YAML document."""
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def load_yaml_docs(path: Path) -> list[Any]:
    """Every non-empty document of a YAML stream."""
    with path.open(encoding="utf-8") as handle:
        return [doc for doc in yaml.safe_load_all(handle) if doc is not None]


def compose_schema() -> dict[str, Any]:
    """The compose-spec JSON schema vendored inside check-jsonschema."""
    ref = resources.files("check_jsonschema") / "builtin_schemas/vendor/compose-spec.json"
    schema: dict[str, Any] = json.loads(ref.read_text(encoding="utf-8"))
    return schema


def env_file_assignments(text: str, *, commented: bool = False) -> dict[str, str]:
    """``NAME=value`` lines of an env file; with ``commented``, also ``# NAME=value`` ones."""
    found: dict[str, str] = {}
    for line in text.splitlines():
        if not commented and line.lstrip().startswith("#"):
            continue
        match = _ENV_LINE.match(line)
        if match:
            value = match.group(2).strip()
            if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
                value = value[1:-1]
            found[match.group(1)] = value
    return found


def interpolate(value: str, env: Mapping[str, str]) -> str:
    """Resolve compose ``${VAR}``, ``${VAR:-default}`` and ``${VAR:?error}`` like compose.

    Raises ``KeyError`` where compose would refuse to start (a required variable unset).
    """

    def replace(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name, op, arg = match.group("name"), match.group("op"), match.group("arg") or ""
        current = env.get(name)
        missing = current is None or (op is not None and op.startswith(":") and current == "")
        if op in (":-", "-"):
            return arg if missing else str(current)
        if op in (":?", "?"):
            if missing:
                raise KeyError(f"{name}: {arg}")
            return str(current)
        if op in (":+", "+"):
            return "" if missing else arg
        return "" if current is None else current

    return _INTERPOLATION.sub(replace, value)


# ---------------------------------------------------------------- kubernetes


def containers(doc: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    """The containers (init containers too) of a workload document."""
    spec = doc.get("spec") or {}
    template = spec.get("template") or {}
    pod = template.get("spec") or {}
    yield from pod.get("initContainers") or []
    yield from pod.get("containers") or []


# ---------------------------------------------------------------- Dockerfile


def _dockerfile_instructions(text: str) -> list[tuple[str, str]]:
    joined = re.sub(r"\\\n", " ", text)
    instructions: list[tuple[str, str]] = []
    for raw in joined.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        keyword, _, rest = line.partition(" ")
        instructions.append((keyword.upper(), rest.strip()))
    return instructions


def dockerfile_problems(text: str) -> list[str]:
    """What keeps a Dockerfile from being Sieve's multi-stage, non-root, locked build."""
    problems: list[str] = []
    instructions = _dockerfile_instructions(text)
    froms = [rest for keyword, rest in instructions if keyword == "FROM"]
    if len(froms) < 2:
        problems.append("not multi-stage: fewer than two FROM lines")
    stage_names = {
        parts[2].lower() for parts in (rest.split() for rest in froms) if len(parts) >= 3
    }
    for rest in froms:
        image = next((p for p in rest.split() if not p.startswith("--")), "")
        if image.lower() in stage_names:
            continue
        name, _, digest = image.partition("@")
        tag = name.rsplit(":", 1)[1] if ":" in name.rsplit("/", 1)[-1] else ""
        if not digest and (not tag or tag == "latest"):
            problems.append(f"base image {image!r} is not pinned (no tag, or 'latest')")
    last_from = max(i for i, (kw, _) in enumerate(instructions) if kw == "FROM") if froms else 0
    users = [rest for kw, rest in instructions[last_from:] if kw == "USER"]
    if not users:
        problems.append("the final stage sets no USER: it would run as root")
    elif users[-1].split(":")[0] in ("root", "0"):
        problems.append(f"the final stage runs as {users[-1]!r}")
    runs = " ".join(rest for kw, rest in instructions if kw == "RUN")
    if not re.search(r"\buv sync\b[^;&|]*--frozen", runs):
        problems.append("no `uv sync --frozen`: the build does not follow uv.lock")
    return problems
