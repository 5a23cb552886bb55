"""Compare pydantic models with an OpenAPI document's component schemas, by shape.

A shape keeps what a client relies on: property names, which are required, types (refs by
name), defaults and the validation bounds; it drops titles and descriptions.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

__all__ = ["component_name", "model_schemas", "shape"]

_BOUNDS = (
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "pattern",
    "minLength",
    "maxLength",
    "minItems",
    "maxItems",
    "format",
)


def component_name(ref: str) -> str:
    """``#/components/schemas/X-Input`` -> ``X`` (FastAPI splits a model used both ways)."""
    name = ref.rsplit("/", 1)[-1]
    return name.removesuffix("-Input").removesuffix("-Output")


def _freeze(value: Any) -> Any:
    if isinstance(value, dict):
        return tuple(sorted((k, _freeze(v)) for k, v in value.items()))
    if isinstance(value, list):
        return tuple(_freeze(v) for v in value)
    if isinstance(value, int) and not isinstance(value, bool):
        # FastAPI writes large integer bounds (int64) as JSON floats: compare as numbers.
        return float(value)
    return value


def _type(schema: dict[str, Any]) -> Any:
    if "$ref" in schema:
        return ("ref", component_name(schema["$ref"]))
    if "anyOf" in schema:
        return ("anyOf", frozenset(_type(s) for s in schema["anyOf"]))
    if "enum" in schema:
        return ("enum", frozenset(schema["enum"]))
    if "const" in schema:
        return ("enum", frozenset([schema["const"]]))
    kind = schema.get("type")
    bounds = tuple((k, _freeze(schema[k])) for k in _BOUNDS if k in schema)
    if kind == "array":
        return ("array", _type(schema.get("items", {})), bounds)
    if kind == "object":
        extra = schema.get("additionalProperties")
        return ("object", _type(extra) if isinstance(extra, dict) else extra, bounds)
    return (kind, bounds)


def shape(schema: dict[str, Any]) -> dict[str, Any]:
    """An object schema's shape: its properties (type and default) and required names."""
    if "enum" in schema:
        return {"enum": frozenset(schema["enum"])}
    props = {
        # FastAPI leaves out a ``null`` default; pydantic writes it: the same contract.
        name: (_type(prop), _freeze(prop.get("default")))
        for name, prop in schema.get("properties", {}).items()
    }
    return {"properties": props, "required": frozenset(schema.get("required", []))}


def model_schemas(models: list[type[BaseModel]], mode: str) -> dict[str, dict[str, Any]]:
    """Each model's JSON schema (and those it refers to), keyed by model name."""
    out: dict[str, dict[str, Any]] = {}
    for model in models:
        schema = model.model_json_schema(
            mode=mode,  # type: ignore[arg-type]
            ref_template="#/components/schemas/{model}",
        )
        for name, sub in schema.pop("$defs", {}).items():
            out.setdefault(name, sub)
        out[model.__name__] = schema
    return out
