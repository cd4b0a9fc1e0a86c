"""Pipelines as versioned resources through the real proxy and a real webserver reading the same specs."""

from __future__ import annotations

import shutil
import threading
from pathlib import Path

import httpx
import sqlalchemy as sa

from aggregator.proxy.api.errors import ApiError
from aggregator.proxy.api.spec_store import SpecStore, etag_of
from aggregator.proxy.storage.audit import AuditQuery
from aggregator.settings import EXAMPLE_PIPELINES_DIR, Settings
from aggregator_tests.postgres import PgDatabase
from aggregator_tests.proxy.api.conftest import ApiStack

DEMO = """pipelines:
  - name: {name}
    description: {description}
    sources:
      - name: orders
        connection: sales_export
        stream: {{type: file, path: sales_orders.csv}}
"""


def demo(name: str, description: str = "Made through the API.") -> str:
    return DEMO.format(name=name, description=description)


def create(stack: ApiStack, name: str, who: str = "editor") -> httpx.Response:
    with stack.client(who) as c:
        return c.post("/api/pipelines", json={"name": name, "yaml": demo(name)})


def test_create_shows_in_dagster_and_history(api_stack: ApiStack) -> None:
    """A created pipeline is a file in the specs dir, a version, an audit row, and (after the reload the API
    triggers) assets in the webserver's code location."""
    response = create(api_stack, "api_created")
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["version"] == 1 and body["reloaded"], body
    assert (api_stack.specs_dir / "api_created.yaml").read_text() == demo("api_created")
    assert "api_created/orders" in api_stack.upstream_assets()
    with api_stack.client("viewer") as c:
        got = c.get("/api/pipelines/api_created")
        assert got.status_code == 200 and got.headers["etag"] == body["etag"]
        history = c.get("/api/pipelines/api_created/versions").json()
    assert [(v["version"], v["action"], v["username"]) for v in history] == [(1, "create", "editor")]
    assert "+    description: Made through the API." in history[0]["diff"]
    rows = api_stack.proxy.audit.query(AuditQuery(event="api", username="editor", limit=50))
    assert any(r.operation and "create_pipeline" in r.operation and r.decision == "allow"
               and r.targets.get("pipelines") == ["api_created"] for r in rows), rows


def test_invalid_spec_stores_nothing_and_old_version_stays(api_stack: ApiStack) -> None:
    """A write that fails validation answers the same `file:line: field: message` problems as
    `aggregator validate`, and leaves file, history and the running code location as they were."""
    assert create(api_stack, "api_invalid").status_code == 201
    path = api_stack.specs_dir / "api_invalid.yaml"
    before = path.read_text()
    with api_stack.client("editor") as c:
        etag = c.get("/api/pipelines/api_invalid").headers["etag"]
        bad = demo("api_invalid").replace("stream:", "write_mode: upsert\n        stream:")
        response = c.put("/api/pipelines/api_invalid", json={"yaml": bad}, headers={"If-Match": etag})
        assert response.status_code == 422, response.text
        body = response.json()
        assert body["error"] == "invalid"
        [problem] = body["problems"]
        assert problem["text"] == ("api_invalid.yaml:7: pipelines[0].sources[0].write_mode: "
                                   "Input should be 'append', 'replace' or 'merge'"), problem
        assert path.read_text() == before
        assert len(c.get("/api/pipelines/api_invalid/versions").json()) == 1
        assert c.get("/api/pipelines/api_invalid").headers["etag"] == etag
    assert "api_invalid/orders" in api_stack.upstream_assets()


def test_concurrent_updates_one_wins_other_412(api_stack: ApiStack) -> None:
    """Two editors holding the same ETag write at the same moment: exactly one 200, the other 412."""
    assert create(api_stack, "api_race").status_code == 201
    with api_stack.client("editor") as c:
        etag = c.get("/api/pipelines/api_race").headers["etag"]
    results: list[int] = []
    barrier = threading.Barrier(2)

    def write(description: str) -> None:
        with api_stack.client("editor") as c:
            barrier.wait()
            results.append(c.put("/api/pipelines/api_race", json={"yaml": demo("api_race", description)},
                                 headers={"If-Match": etag}).status_code)

    threads = [threading.Thread(target=write, args=(d,)) for d in ("First writer.", "Second writer.")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    assert sorted(results) == [200, 412], results
    with api_stack.client("viewer") as c:
        assert [v["version"] for v in c.get("/api/pipelines/api_race/versions").json()] == [2, 1]
    # A stale ETag after the race is refused too, and an absent one is asked for.
    with api_stack.client("editor") as c:
        assert c.put("/api/pipelines/api_race", json={"yaml": demo("api_race")},
                     headers={"If-Match": etag}).status_code == 412
        assert c.put("/api/pipelines/api_race", json={"yaml": demo("api_race")}).status_code == 428


def test_rollback_outside_the_grant_says_nothing_about_versions(api_stack: ApiStack) -> None:
    """Rollback answered 404 for a version that does not exist before its scope check, so an editor scoped to
    sales learned which versions of shop exist. Outside the grant every version answers the same 403."""
    with api_stack.client("sales_editor") as c:
        answers = {c.post(f"/api/pipelines/shop/versions/{n}/rollback").status_code for n in (1, 999)}
    assert answers == {403}


def test_history_and_rollback(api_stack: ApiStack) -> None:
    """Each write is a version with who/when/diff; a rollback restores an old file as a new version."""
    assert create(api_stack, "api_history").status_code == 201
    with api_stack.client("editor") as c:
        etag = c.get("/api/pipelines/api_history").headers["etag"]
        r = c.put("/api/pipelines/api_history", json={"yaml": demo("api_history", "Second text.")},
                  headers={"If-Match": etag})
        assert r.status_code == 200, r.text
        history = c.get("/api/pipelines/api_history/versions").json()
        assert [v["action"] for v in history] == ["update", "create"]
        assert "-    description: Made through the API.\n+    description: Second text." in history[0]["diff"]
        assert history[0]["ts"] >= history[1]["ts"] and history[0]["username"] == "editor"
        r = c.post("/api/pipelines/api_history/versions/1/rollback", headers={"If-Match": r.json()["etag"]})
        assert r.status_code == 200, r.text
        assert r.json()["version"] == 3
        assert (api_stack.specs_dir / "api_history.yaml").read_text() == demo("api_history")
        assert next(v["action"] for v in c.get("/api/pipelines/api_history/versions").json()) == "rollback"


def test_delete_removes_file_and_assets(api_stack: ApiStack) -> None:
    assert create(api_stack, "api_gone").status_code == 201
    assert "api_gone/orders" in api_stack.upstream_assets()
    with api_stack.client("editor") as c:
        etag = c.get("/api/pipelines/api_gone").headers["etag"]
        r = c.delete("/api/pipelines/api_gone", headers={"If-Match": etag})
        assert r.status_code == 200, r.text
        assert c.get("/api/pipelines/api_gone").status_code == 404
        assert c.get("/api/pipelines/api_gone/versions").json()[0]["action"] == "delete"
    assert not (api_stack.specs_dir / "api_gone.yaml").exists()
    assert "api_gone/orders" not in api_stack.upstream_assets()


def test_delete_of_a_file_with_other_pipelines_is_refused(api_stack: ApiStack) -> None:
    two = demo("api_pair_a") + demo("api_pair_b").removeprefix("pipelines:\n")
    (api_stack.specs_dir / "api_pair.yaml").write_text(two)
    try:
        with api_stack.client("editor") as c:
            etag = c.get("/api/pipelines/api_pair_a").headers["etag"]
            r = c.delete("/api/pipelines/api_pair_a", headers={"If-Match": etag})
        assert r.status_code == 409 and "api_pair_b" in r.json()["detail"]
    finally:
        (api_stack.specs_dir / "api_pair.yaml").unlink()


def test_validate_endpoint_stores_nothing(api_stack: ApiStack) -> None:
    with api_stack.client("viewer") as c:
        r = c.post("/api/pipelines/validate", json={"name": "api_probe", "yaml": demo("api_probe")})
        assert r.status_code == 200 and r.json() == {"ok": True, "problems": []}, r.text
        r = c.post("/api/pipelines/validate", json={"name": "api_probe", "yaml": "pipelines: [{name: 1x}]"})
        assert r.json()["ok"] is False and r.json()["problems"][0]["file"] == "api_probe.yaml"
    assert not (api_stack.specs_dir / "api_probe.yaml").exists()


def test_validation_never_writes_into_the_specs_directory(tmp_path: Path) -> None:
    """Regression: the scratch copy linked subdirectories holding no spec, so validating a new
    `connections/<name>.yaml` wrote the candidate through the link into the real directory (found when a
    create then failed its own 'changed while validated' check)."""
    specs = tmp_path / "specs"
    (specs / "connections").mkdir(parents=True)
    (specs / "data").mkdir()
    (specs / "data" / "x.csv").write_text("a\n1\n")
    store = SpecStore(sa.create_engine(f"sqlite:///{tmp_path / 'p.db'}"),
                      Settings(home=tmp_path, pipelines_dir=specs, warehouse_url=f"sqlite:///{tmp_path / 'w.db'}"))
    for rel in ("connections/c.yaml", "data/sneaky.yaml", "new/dir/p.yaml"):
        store.check(rel, "pipelines: []\n")
        assert not (specs / rel).exists(), rel
    assert sorted(p.name for p in specs.rglob("*")) == ["connections", "data", "x.csv"]


def test_two_replicas_on_postgres_one_write_wins(pg_db: PgDatabase, tmp_path: Path) -> None:
    """Two proxy replicas (two SpecStores, no shared lock) on one PostgreSQL and one specs volume, writing
    with the same ETag at once: the unique (pipeline, version) row lets exactly one through."""
    specs = tmp_path / "specs"
    shutil.copytree(EXAMPLE_PIPELINES_DIR, specs)
    settings = Settings(home=tmp_path, pipelines_dir=specs, warehouse_url=f"sqlite:///{tmp_path / 'w.db'}")
    engines = [sa.create_engine(pg_db.sqlalchemy_url) for _ in range(2)]
    replicas = [SpecStore(engine, settings) for engine in engines]
    try:
        base = replicas[0].write("api_pg", "api_pg.yaml", demo("api_pg"), "editor", "create", None)
        etag = etag_of(base.content)
        for attempt in range(5):  # several rounds: the interleaving differs from round to round
            outcomes: list[int] = []
            barrier = threading.Barrier(2)

            def write(store: SpecStore, text: str, outcomes: list[int] = outcomes,
                      barrier: threading.Barrier = barrier, etag: str = etag) -> None:
                barrier.wait()
                try:
                    store.write("api_pg", "api_pg.yaml", demo("api_pg", text), "editor", "update", etag)
                    outcomes.append(200)
                except ApiError as exc:
                    outcomes.append(exc.status)

            threads = [threading.Thread(target=write, args=(r, f"Replica {i} round {attempt}."))
                       for i, r in enumerate(replicas)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(120)
            assert sorted(outcomes) == [200, 412], outcomes
            etag = etag_of((specs / "api_pg.yaml").read_text())
        history = replicas[1].history("api_pg")
        assert [v.version for v in history] == list(range(6, 0, -1))
        assert (specs / "api_pg.yaml").read_text() == history[0].content
    finally:
        for engine in engines:  # pooled psycopg connections must not outlive the test's database
            engine.dispose()


def test_inline_secrets_are_neither_accepted_nor_served(api_stack: ApiStack) -> None:
    """A spec with a password inline is refused on write (422 naming the field, never the value), and a
    hand-written one is not served by GET."""
    spec = demo("api_secret") + ("connections:\n  api_secret_db:\n    type: sql\n"
                                 "    config: {url: 'postgresql://u:hunter2@db/x'}\n")
    with api_stack.client("editor") as c:
        r = c.post("/api/pipelines", json={"name": "api_secret", "yaml": spec})
        assert r.status_code == 422 and "connections.api_secret_db.config.url" in r.text and "hunter2" not in r.text
        (api_stack.specs_dir / "api_secret.yaml").write_text(spec)
        try:
            got = c.get("/api/pipelines/api_secret")
        finally:
            (api_stack.specs_dir / "api_secret.yaml").unlink()
    assert got.status_code == 409 and "hunter2" not in got.text


def test_bundled_samples_are_never_written(tmp_path: Path) -> None:
    """Without AGGREGATOR_PIPELINES the samples seed the spec store; a write goes to the store (and is served
    from it), never into the package's files."""
    store = SpecStore(sa.create_engine(f"sqlite:///{tmp_path / 'p.db'}"), Settings(
        home=tmp_path, pipelines_dir=EXAMPLE_PIPELINES_DIR, warehouse_url=f"sqlite:///{tmp_path / 'w.db'}"))
    before = {str(p): p.read_bytes() for p in EXAMPLE_PIPELINES_DIR.rglob("*") if p.is_file()}
    store.write("api_x", "api_x.yaml", demo("api_x"), "editor", "create", None)
    found = store.find("api_x")
    assert found is not None and found.content == demo("api_x")
    assert {loc.name for loc in store.list_all()} >= {"api_x", "sales", "shop"}
    assert {str(p): p.read_bytes() for p in EXAMPLE_PIPELINES_DIR.rglob("*") if p.is_file()} == before
