"""The JSON Schema of spec files, generated from the pydantic models (published as docs/spec.schema.json)."""

from __future__ import annotations

from typing import Any

from aggregator.pipelines.connections import resource_class
from aggregator.pipelines.spec import SpecFile, TemplateUse

ENV_REF = {
    "type": "object",
    "properties": {"env": {"type": "string", "description": "Environment variable read when a run starts."}},
    "required": ["env"],
    "additionalProperties": False,
}


def _allow_env_refs(schema: Any) -> Any:
    """Every string in a connector config may instead be `{env: NAME}`."""
    if isinstance(schema, dict):
        out = {k: _allow_env_refs(v) for k, v in schema.items()}
        if out.get("type") == "string":
            return {"anyOf": [{k: v for k, v in out.items() if k not in ("title", "description", "default")}, ENV_REF],
                    **{k: out[k] for k in ("title", "description", "default") if k in out}}
        return out
    if isinstance(schema, list):
        return [_allow_env_refs(v) for v in schema]
    return schema


def spec_json_schema() -> dict[str, Any]:
    schema = SpecFile.model_json_schema(by_alias=True)
    defs = schema.setdefault("$defs", {})
    # `pipelines:` items are pipelines or template instances (`{use: ..., with: ...}`).
    defs["TemplateUse"] = TemplateUse.model_json_schema(by_alias=True)
    schema["properties"]["pipelines"]["items"] = {
        "anyOf": [{"$ref": "#/$defs/PipelineSpec"}, {"$ref": "#/$defs/TemplateUse"}]
    }
    # A connection's `config` is the connector resource's own config, chosen by `type`.
    branches = []
    for conn_type in ("files", "sql", "rest"):
        config = resource_class(conn_type).model_json_schema()
        for name, sub in config.pop("$defs", {}).items():
            defs.setdefault(name, _allow_env_refs(sub))
        branches.append({
            "if": {"properties": {"type": {"const": conn_type}}},
            "then": {"properties": {"config": _allow_env_refs(config)}},
        })
    defs["Connection"]["allOf"] = branches
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "Data Aggregator pipeline spec"
    return schema
