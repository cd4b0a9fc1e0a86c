"""Connector types, connections as files of their own (create/update/delete), check and discover."""

from __future__ import annotations

from typing import Any

import jsonschema
import pytest

from aggregator.proxy.api.secrets_check import inline_secrets, masked
from aggregator_tests.proxy.api.conftest import ApiStack
from connectors.registry import CONNECTOR_TYPES


def test_connector_types_carry_their_config_schema(api_stack: ApiStack) -> None:
    with api_stack.client("viewer") as c:
        types = {t["name"]: t for t in c.get("/api/connector-types").json()}
    assert list(types) == list(CONNECTOR_TYPES)
    sql = types["sql"]["config_schema"]
    jsonschema.validate({"url": {"env": "DB_URL"}}, sql)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"url": "sqlite:///x.db", "no_such_field": 1}, sql)


def _properties(schema: object, path: str = "") -> list[tuple[str, dict[str, Any]]]:
    """(dotted path, schema) of every property anywhere in a JSON Schema ($defs included)."""
    found: list[tuple[str, dict[str, Any]]] = []
    if isinstance(schema, dict):
        for name, sub in (schema.get("properties") or {}).items():
            found.append((f"{path}.{name}", sub))
        for key, sub in schema.items():
            found.extend(_properties(sub, f"{path}.{key}" if key != "properties" else path))
    elif isinstance(schema, list):
        for sub in schema:
            found.extend(_properties(sub, path))
    return found


def test_secret_options_are_marked_for_forms(api_stack: ApiStack) -> None:
    """Newcomer review 13: every string option looked alike, so a form could not tell `token` from `base_url`.
    Every option the API refuses as a literal secret is marked writeOnly / x-secret / format: password, and
    no other option is."""
    with api_stack.client("viewer") as c:
        types = c.get("/api/connector-types").json()
    props = [(f"{t['name']}{path}", sub) for t in types for path, sub in _properties(t["config_schema"])]
    marked = {path.rsplit(".", 1)[-1] for path, sub in props if sub.get("x-secret")}
    assert {"token", "password", "key", "client_secret"} <= marked, marked
    for path, sub in props:
        name = path.rsplit(".", 1)[-1]
        assert bool(sub.get("x-secret")) == bool(inline_secrets({name: "literal"})), path
        if sub.get("x-secret"):
            assert sub["writeOnly"] is True
            assert any(b.get("format") == "password" for b in sub.get("anyOf", [sub])), sub


def test_check_and_discover_a_declared_connection(api_stack: ApiStack) -> None:
    with api_stack.client("editor") as c:
        check = c.post("/api/connections/shop_db/check")
        assert check.status_code == 200 and check.json()["ok"] is True, check.text
        streams = c.post("/api/connections/shop_db/discover", json={})
    assert streams.status_code == 200, streams.text
    orders = next(s for s in streams.json() if s["name"] == "orders")
    assert "customer_id" in orders["columns"]


def test_connection_lifecycle(api_stack: ApiStack, monkeypatch: pytest.MonkeyPatch) -> None:
    """Create (validated, secrets as env refs only), read back, update with If-Match, delete. Like
    `aggregator validate`, validation wants referenced variables set where it runs (the proxy)."""
    monkeypatch.setenv("API_TOKEN", "value-never-served")
    with api_stack.client("editor") as c:
        inline = c.post("/api/connections", json={"name": "api_rest", "type": "rest", "config": {
            "base_url": "https://api.example.com", "auth": {"type": "bearer", "token": "s3cr3t"}}})
        assert inline.status_code == 422 and "config.auth.token" in inline.json()["detail"], inline.text
        assert "s3cr3t" not in inline.text
        r = c.post("/api/connections", json={"name": "api_rest", "type": "rest", "config": {
            "base_url": "https://api.example.com", "auth": {"type": "bearer", "token": {"env": "API_TOKEN"}}}})
        assert r.status_code == 201, r.text
        assert (api_stack.specs_dir / "connections" / "api_rest.yaml").exists()
        got = c.get("/api/connections/api_rest")
        assert "value-never-served" not in got.text
        assert got.json()["config"]["auth"]["token"] == {"env": "API_TOKEN"}
        bad_type = c.put("/api/connections/api_rest", json={"type": "rest", "config": {"base_url": 5}},
                         headers={"If-Match": got.headers["etag"]})
        assert bad_type.status_code == 422 and bad_type.json()["problems"], bad_type.text
        r = c.put("/api/connections/api_rest", json={"type": "rest", "config": {"base_url": "https://b.example"}},
                  headers={"If-Match": got.headers["etag"]})
        assert r.status_code == 200, r.text
        assert c.put("/api/connections/api_rest", json={"type": "rest", "config": {}},
                     headers={"If-Match": got.headers["etag"]}).status_code == 412
        r = c.delete("/api/connections/api_rest", headers={"If-Match": r.json()["etag"]})
        assert r.status_code == 200, r.text
    assert not (api_stack.specs_dir / "connections" / "api_rest.yaml").exists()


def test_connection_in_use_cannot_be_deleted(api_stack: ApiStack) -> None:
    with api_stack.client("editor") as c:
        assert c.delete("/api/connections/shop_db", headers={"If-Match": "*"}).status_code == 409  # shared file
        r = c.post("/api/connections", json={"name": "api_used", "type": "files", "config": {"base_dir": "."}})
        assert r.status_code == 201, r.text
        spec = ("pipelines:\n  - name: api_user\n    sources:\n      - name: f\n        connection: api_used\n"
                "        stream: {type: file, path: x.csv}\n")
        assert c.post("/api/pipelines", json={"name": "api_user", "yaml": spec}).status_code == 201
        r = c.delete("/api/connections/api_used", headers={"If-Match": r.json()["etag"]})
    assert r.status_code == 422 and "api_used" in r.text, r.text


@pytest.mark.parametrize(("config", "paths"), [
    ({"url": "postgresql://u:pw@db/x"}, ["config.url"]),
    ({"url": "postgresql://u@db/x"}, []),
    ({"base_url": "https://x/?api_key=abc"}, ["config.base_url"]),
    ({"headers": {"Authorization": "Bearer x"}}, ["config.headers.Authorization"]),
    ({"auth": {"password": {"env": "PW"}}}, []),
    ({"params": [{"token": "t"}]}, ["config.params.0.token"]),
])
def test_inline_secrets_are_found_and_masked(config: dict[str, object], paths: list[str]) -> None:
    assert inline_secrets(config) == paths
    assert "pw@" not in str(masked(config)) and "abc" not in str(masked(config))
