"""The JSON Schema of spec files, generated from the pydantic models (published as docs/spec.schema.json)."""

from __future__ import annotations

from typing import Any

from aggregator.pipelines.spec import SpecFile, TemplateUse
from connectors.redact import is_secret_key
from connectors.registry import CONNECTOR_TYPES

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


def _mark_secrets(schema: Any) -> Any:
    """Options whose value is a credential (connectors/redact.py `is_secret_key`) say so, so a form renders them
    as secrets: `writeOnly` (JSON Schema: never read back), `x-secret`, and `format: password` on the string."""
    if isinstance(schema, dict):
        out = {k: _mark_secrets(v) for k, v in schema.items()}
        props = out.get("properties")
        if isinstance(props, dict):
            out["properties"] = {name: _secret(sub) if is_secret_key(name) and isinstance(sub, dict) else sub
                                 for name, sub in props.items()}
        return out
    if isinstance(schema, list):
        return [_mark_secrets(v) for v in schema]
    return schema


def _secret(prop: dict[str, Any]) -> dict[str, Any]:
    marked = {**prop, "writeOnly": True, "x-secret": True}
    if prop.get("type") == "string":
        marked["format"] = "password"
    if isinstance(prop.get("anyOf"), list):
        marked["anyOf"] = [{**b, "format": "password"} if b.get("type") == "string" else b for b in prop["anyOf"]]
    return marked


def _closed(schema: Any) -> Any:
    """Connector configs reject unknown options (connectors.strict), so their schema says so too: editors
    then flag a misspelt option, in nested blocks (auth:) as well."""
    if isinstance(schema, dict):
        out = {k: _closed(v) for k, v in schema.items()}
        if out.get("type") == "object" and "properties" in out and "additionalProperties" not in out:
            out["additionalProperties"] = False
        return out
    if isinstance(schema, list):
        return [_closed(v) for v in schema]
    return schema


def spec_json_schema() -> dict[str, Any]:
    schema = SpecFile.model_json_schema(by_alias=True)
    defs = schema.setdefault("$defs", {})
    # `pipelines:` items are pipelines or template instances (`{use: ..., with: ...}`).
    defs["TemplateUse"] = TemplateUse.model_json_schema(by_alias=True)
    schema["properties"]["pipelines"]["items"] = {
        "anyOf": [{"$ref": "#/$defs/PipelineSpec"}, {"$ref": "#/$defs/TemplateUse"}]
    }
    # A connection's `config` is the connector resource's own config, chosen by `type` (one branch per
    # registered connector, from the resource's pydantic model).
    branches = []
    for conn_type in CONNECTOR_TYPES.values():
        config = conn_type.resource_class().model_json_schema()
        for name, sub in config.pop("$defs", {}).items():
            defs.setdefault(name, _mark_secrets(_closed(_allow_env_refs(sub))))
        config["description"] = f"{conn_type.summary} (docs/connectors/). " + config.get("description", "")
        branches.append({
            "if": {"properties": {"type": {"const": conn_type.name}}},
            "then": {"properties": {"config": _mark_secrets(_closed(_allow_env_refs(config)))}},
        })
    defs["Connection"]["allOf"] = branches
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "Data Aggregator pipeline spec"
    return schema
