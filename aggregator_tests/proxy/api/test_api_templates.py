"""Templates: listed from the specs, instantiated into an ordinary versioned pipeline."""

from __future__ import annotations

from aggregator_tests.proxy.api.conftest import ApiStack

TEMPLATE = """templates:
  api_region:
    params: [region]
    pipeline:
      name: "api_sales_${region}"
      tags: {region: "${region}"}
      sources:
        - name: orders
          connection: sales_export
          stream: {type: file, path: sales_orders.csv}
"""


def test_list_and_instantiate(api_stack: ApiStack) -> None:
    (api_stack.specs_dir / "api_templates.yaml").write_text(TEMPLATE)
    with api_stack.client("editor") as c:
        templates = {t["name"]: t for t in c.get("/api/templates").json()}
        assert templates["api_region"]["params"] == ["region"]
        assert templates["api_region"]["file"] == "api_templates.yaml"
        missing = c.post("/api/templates/api_region/instantiate", json={"params": {}})
        assert missing.status_code == 422 and "region" in missing.json()["detail"]
        r = c.post("/api/templates/api_region/instantiate", json={"params": {"region": "eu"}})
        assert r.status_code == 201, r.text
        assert r.json()["name"] == "api_sales_eu" and r.json()["reloaded"] is True
        doc = c.get("/api/pipelines/api_sales_eu").json()
        assert doc["yaml"].startswith("# Made from template api_region") and "region: eu" in doc["yaml"]
        again = c.post("/api/templates/api_region/instantiate", json={"params": {"region": "eu"}})
        assert again.status_code == 409
    assert "api_sales_eu/orders" in api_stack.upstream_assets()


def test_scoped_editor_cannot_instantiate_outside_its_grant(api_stack: ApiStack) -> None:
    (api_stack.specs_dir / "api_templates.yaml").write_text(TEMPLATE)
    with api_stack.client("sales_editor") as c:
        r = c.post("/api/templates/api_region/instantiate", json={"params": {"region": "us"}})
    assert r.status_code == 403 and "api_sales_us" in r.json()["missing_permission"]
