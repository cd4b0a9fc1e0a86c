"""Scope decisions on spec writes come from the loader, through the real proxy and a real webserver.

Each test acts as users of its own (`scope_a_editor`, `scope_a_viewer`: editor and viewer of pipeline
`scope_a` only) and checks what Dagster's code location holds afterwards, not only the status code: a refused
write leaves no asset behind, an allowed one shows up.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from aggregator.proxy.api.reload import reload_locations
from aggregator.proxy.policy.rbac import Role
from aggregator_tests.proxy.api.conftest import PASSWORD, ApiStack

SCOPE_USERS = {"scope_a_editor": (Role.editor, ["scope_a"]), "scope_a_viewer": (Role.viewer, ["scope_a"]),
               "scope_h_viewer": (Role.viewer, ["scope_h"])}
FILES = ("scope_a.yaml", "scope_c.yaml", "scope_templates.yaml", "scope_hand.yaml")

PIPELINE_A = """pipelines:
  - name: scope_a
    description: {description}
    sources:
      - name: orders
        connection: sales_export
        stream: {{type: file, path: sales_orders.csv}}
"""

TEMPLATES = """templates:
  scope_t:
    params: [n]
    pipeline:
      name: "${n}"
      description: "made from scope_t"
      sources:
        - name: orders
          connection: sales_export
          stream: {type: file, path: sales_orders.csv}
"""

INSTANCE = "  - {use: scope_t, with: {n: scope_b}}\n"

CONNECTION = """connections:
  scope_a_files:
    type: files
    config: {{base_dir: {base_dir}}}
pipelines:
  - name: scope_a
    description: {description}
    sources:
      - name: orders
        connection: scope_a_files
        stream: {{type: file, path: sales_orders.csv}}
"""

CROSS_REF = PIPELINE_A + """    transforms:
      - name: copied
        sql: SELECT * FROM {{{{ ref('sales.orders') }}}}
"""


def upstream_descriptions(stack: ApiStack) -> dict[str, str | None]:
    """Asset key -> description, straight from the webserver (not through the proxy)."""
    body = httpx.post(f"{stack.upstream_url}/graphql", timeout=60, json={
        "query": "{ assetNodes { assetKey { path } description } }"}).json()
    return {"/".join(n["assetKey"]["path"]): n["description"] for n in body["data"]["assetNodes"]}


def _remove_own_files(stack: ApiStack) -> None:
    """Back to the samples: remove this module's files and reload the webserver's code location."""
    present = [name for name in FILES if (stack.specs_dir / name).exists()]
    for name in present:
        (stack.specs_dir / name).unlink()
    if present:
        asyncio.run(_reload(stack))
        assert not {k for k in upstream_descriptions(stack) if k.startswith("scope_")}


async def _reload(stack: ApiStack) -> None:
    async with httpx.AsyncClient(timeout=300) as client:
        assert await reload_locations(client, f"{stack.upstream_url}/graphql", {}) == []


@pytest.fixture
def stack(api_stack: ApiStack) -> Iterator[ApiStack]:
    for user, (role, scope) in SCOPE_USERS.items():
        if user not in api_stack.tokens:
            api_stack.proxy.store.add_user(user, PASSWORD, role, scope=scope)
            api_stack.tokens[user], _ = api_stack.proxy.store.create_token(user)
    _remove_own_files(api_stack)
    try:
        yield api_stack
    finally:
        _remove_own_files(api_stack)


def create(stack: ApiStack, who: str, yaml: str, name: str = "scope_a") -> httpx.Response:
    with stack.client(who) as c:
        return c.post("/api/pipelines", json={"name": name, "yaml": yaml})


def update(stack: ApiStack, who: str, yaml: str, name: str = "scope_a") -> httpx.Response:
    with stack.client(who) as c:
        etag = c.get(f"/api/pipelines/{name}").headers["etag"]
        return c.put(f"/api/pipelines/{name}", json={"yaml": yaml}, headers={"If-Match": etag})


def forbidden(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 403, response.text
    body: dict[str, Any] = response.json()
    assert body["error"] == "forbidden"
    return body


def test_template_instance_outside_the_grant_is_refused(stack: ApiStack) -> None:
    """Regression: `{use: t, with: {n: other}}` in a file of a scoped editor made pipeline `other`; the scope
    check read only `name:` keys. The loader's answer (the instance is `scope_b`) is what is checked."""
    (stack.specs_dir / "scope_templates.yaml").write_text(TEMPLATES)
    body = forbidden(create(stack, "scope_a_editor", PIPELINE_A.format(description="mine") + INSTANCE))
    assert "scope_b" in body["missing_permission"] and "scope_b" in body["detail"], body
    assert not (stack.specs_dir / "scope_a.yaml").exists()
    assets = upstream_descriptions(stack)
    assert "scope_b/orders" not in assets and "scope_a/orders" not in assets
    # The same file from an unscoped editor: both pipelines exist in Dagster, the instance as the loader made it.
    assert create(stack, "editor", PIPELINE_A.format(description="mine") + INSTANCE).status_code == 201
    assets = upstream_descriptions(stack)
    assert "scope_a/orders" in assets and "scope_b/orders" in assets
    with stack.client("viewer") as c:
        doc = c.get("/api/pipelines/scope_b").json()
    assert doc["file"] == "scope_a.yaml" and doc["pipelines_in_file"] == ["scope_a", "scope_b"], doc
    # Now the file declares `scope_b`: even a no-op rewrite by the scoped editor is outside its grant.
    forbidden(update(stack, "scope_a_editor", PIPELINE_A.format(description="mine") + INSTANCE))


def test_editing_a_template_counts_as_editing_its_instances_elsewhere(stack: ApiStack) -> None:
    """A template declared in a file of `scope_a` and used in `scope_c.yaml`: changing the template changes
    pipeline `scope_c`, so it needs `scope_c` in the grant, although the written file never names it."""
    templates = TEMPLATES.replace("params: [n]", "params: [n]\n    # v1")
    assert create(stack, "editor", PIPELINE_A.format(description="mine") + templates).status_code == 201
    assert create(stack, "editor", "pipelines:\n  - {use: scope_t, with: {n: scope_c}}\n", "scope_c").status_code \
        == 201
    assert upstream_descriptions(stack)["scope_c/orders"] == "orders (scope_c pipeline)"
    changed = PIPELINE_A.format(description="mine") + templates.replace(
        "sales_orders.csv}", "sales_orders.csv}\n          description: rewritten by scope_a")
    body = forbidden(update(stack, "scope_a_editor", changed))
    assert "scope_c" in body["missing_permission"], body
    assert upstream_descriptions(stack)["scope_c/orders"] == "orders (scope_c pipeline)"
    # Its own pipeline, template untouched: allowed, and Dagster shows the new description.
    assert update(stack, "scope_a_editor", PIPELINE_A.format(description="mine, v2") + templates).status_code == 200


@pytest.mark.parametrize("change", ["add", "change", "remove", "delete"])
def test_connection_in_a_pipeline_file_is_a_connection_write(stack: ApiStack, change: str) -> None:
    """Regression: only an unscoped editor may write `/api/connections`, but `PUT /api/pipelines/<name>`
    carried any connection. Adding, changing or removing a connection in a pipeline file needs the same grant;
    carrying one along unchanged does not."""
    if change == "add":
        body = forbidden(create(stack, "scope_a_editor", CONNECTION.format(base_dir="data", description="mine")))
        assert body["missing_permission"] == "editor:update_connection scope_a_files (all pipelines)", body
        assert "scope_a/orders" not in upstream_descriptions(stack)
        return
    assert create(stack, "editor", CONNECTION.format(base_dir="data", description="mine")).status_code == 201
    path = stack.specs_dir / "scope_a.yaml"
    before = path.read_text()
    if change == "change":
        response = update(stack, "scope_a_editor", CONNECTION.format(base_dir="/etc", description="mine"))
    elif change == "remove":
        response = update(stack, "scope_a_editor", PIPELINE_A.format(description="mine"))
    else:
        with stack.client("scope_a_editor") as c:
            etag = c.get("/api/pipelines/scope_a").headers["etag"]
            response = c.delete("/api/pipelines/scope_a", headers={"If-Match": etag})
    assert "scope_a_files" in forbidden(response)["missing_permission"]
    assert path.read_text() == before
    assert upstream_descriptions(stack)["scope_a/orders"] == "orders (scope_a pipeline)"
    # The connection carried along unchanged: the scoped editor changes its own pipeline, Dagster shows it.
    allowed = update(stack, "scope_a_editor", CONNECTION.format(base_dir="data", description="mine").replace(
        "stream:", "description: edited by its editor\n        stream:"))
    assert allowed.status_code == 200, allowed.text
    assert upstream_descriptions(stack)["scope_a/orders"] == "edited by its editor"


def test_cross_pipeline_ref_needs_the_other_pipeline_in_the_writers_grant(stack: ApiStack) -> None:
    """A transform reading `sales.orders` makes sales's rows part of `scope_a`'s tables: the writer needs
    `sales` in its grant. An unscoped editor may, and Dagster then draws the cross-pipeline dependency."""
    body = forbidden(create(stack, "scope_a_editor", CROSS_REF.format(description="mine")))
    assert "sales" in body["missing_permission"] and "sales" in body["detail"], body
    assert "scope_a/copied" not in upstream_descriptions(stack)
    assert create(stack, "editor", CROSS_REF.format(description="mine")).status_code == 201
    assert "scope_a/copied" in upstream_descriptions(stack)
    # An unchanged transform keeps its ref: the scoped editor may still edit the rest of its pipeline.
    assert update(stack, "scope_a_editor", CROSS_REF.format(description="edited")).status_code == 200
    # Changing the transform that reads `sales` is reading it anew.
    forbidden(update(stack, "scope_a_editor", CROSS_REF.format(description="edited").replace(
        "SELECT *", "SELECT order_id")))


HAND_WRITTEN = """pipelines:
  - name: scope_h
    sources:
      - name: orders
        connection: sales_export
        stream: {type: file, path: sales_orders.csv}
        table: shop_customers
  - name: scope_i
    sources:
      - name: orders
        connection: sales_export
        stream: {type: file, path: sales_orders.csv}
"""


def test_tables_outside_the_namespace_are_refused_through_the_api(stack: ApiStack) -> None:
    """Regression: a `sales` source could declare `table: shop_orders` or `table: sqlite_master`; the sales
    grant then listed, queried and exported it, and a sales run would overwrite shop's table."""
    for table, rule in (("shop_customers", "outside pipeline 'scope_a''s namespace"),
                        ("sqlite_master", "system catalog name"), ("sales_orders", "outside pipeline")):
        yaml = PIPELINE_A.format(description="mine") + f"        table: {table}\n"
        response = create(stack, "editor", yaml)
        assert response.status_code == 422, response.text
        [problem] = response.json()["problems"]
        assert (problem["file"], problem["line"], problem["field"]) == (
            "scope_a.yaml", 8, "pipelines[0].sources[0].table"), problem
        assert rule in problem["message"], problem
    assert "scope_a/orders" not in upstream_descriptions(stack)


def test_hand_written_table_outside_the_namespace_drops_only_that_pipeline(stack: ApiStack) -> None:
    """A spec file written by hand (not through the API) with `table: shop_customers` in pipeline `scope_h`:
    the code location leaves out `scope_h` only, reports it in platform/spec_errors, and the API gives the
    scope_h grant no table, query or export of shop's data."""
    (stack.specs_dir / "scope_hand.yaml").write_text(HAND_WRITTEN)
    asyncio.run(_reload(stack))
    assets = upstream_descriptions(stack)
    assert "scope_i/orders" in assets and "scope_h/orders" not in assets, sorted(assets)
    report = assets["platform/spec_errors"] or ""
    assert "scope_hand.yaml:7: pipelines[0].sources[0].table" in report and "scope_h" in report, report
    with stack.client("scope_h_viewer") as c:
        assert [t for t in c.get("/api/tables").json() if t["table"] == "shop_customers"] == []
        query = c.post("/api/query", json={"sql": "SELECT * FROM shop_customers"})
        assert query.status_code == 403 and "Ada" not in query.text, query.text
        assert c.get("/api/assets/scope_h/orders/export").status_code == 404
    with stack.client("viewer") as c:
        owners = {(t["pipeline"], t["table"]) for t in c.get("/api/tables").json()}
    assert ("shop", "shop_customers") in owners and ("scope_h", "shop_customers") not in owners, owners


def test_preview_with_a_cross_pipeline_ref_needs_the_other_pipeline_in_the_readers_grant(stack: ApiStack) -> None:
    """Regression: a transform preview with a ref to `sales.orders` showed a reader scoped to the transform's
    own pipeline the rows of sales's source."""
    assert create(stack, "editor", CROSS_REF.format(description="mine")).status_code == 201
    with stack.client("scope_a_viewer") as c:
        body = forbidden(c.post("/api/pipelines/scope_a/transforms/copied/preview", json={"limit": 3}))
    assert body["missing_permission"] == "viewer:preview_transform on sales", body
    with stack.client("viewer") as c:
        allowed = c.post("/api/pipelines/scope_a/transforms/copied/preview", json={"limit": 3})
    assert allowed.status_code == 200 and allowed.json()["rows"], allowed.text


@pytest.mark.parametrize("sql", [
    "SELECT * FROM shop_customers",
    "SELECT o.* FROM {{ ref('orders') }} AS o JOIN shop_customers AS c ON c.id = o.order_id",
    "WITH shop_customers AS (SELECT * FROM shop_customers) SELECT * FROM shop_customers",
    "SELECT * FROM {{ ref('orders') }} WHERE order_id IN (SELECT id FROM main.shop_customers)",
])
def test_transform_sql_reads_only_what_its_refs_name(stack: ApiStack, sql: str) -> None:
    """Regression: a transform could `SELECT * FROM shop_customers` with no ref, so a scope_a run copied
    shop's rows into a scope_a table (readable by the scope_a grant) and Dagster knew of no dependency."""
    yaml = PIPELINE_A.format(description="mine") + f"    transforms:\n      - name: copied\n        sql: \"{sql}\"\n"
    response = create(stack, "editor", yaml)
    assert response.status_code == 422, response.text
    [problem] = response.json()["problems"]
    assert (problem["line"], problem["field"]) == (10, "pipelines[0].transforms[0].sql"), problem
    assert "shop_customers" in problem["message"] and "refs name" in problem["message"], problem
    assert "scope_a/copied" not in upstream_descriptions(stack)
