"""`aggregator connections check/discover` use a connection exactly as a run does (issue 10, item 1).

Against the local HTTP API (which checks the API key, basic credentials and OAuth2 tokens) and a real
database whose URL comes from the environment."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from click.testing import CliRunner, Result

from aggregator.cli import main
from aggregator_tests.testapi import API_KEY, CLIENT, LocalApi, running_api

SPEC = """
connections:
  keyed:
    type: rest
    config:
      base_url: {url}
      check_path: auth/api_key_header
      auth: {{type: api_key, key: {{env: AGG_TEST_KEY}}}}
  oauth:
    type: rest
    config:
      base_url: {url}
      check_path: auth/oauth2
      auth:
        type: oauth2_client_credentials
        token_url: {url}/oauth/token
        client_id: {client_id}
        client_secret: {{env: AGG_TEST_CLIENT_SECRET}}
  db:
    type: sql
    config: {{url: {{env: AGG_TEST_DB_URL}}}}
pipelines:
  - name: p
    sources:
      - name: items
        connection: keyed
        stream: {{type: rest, path: auth/api_key_header, records_path: data}}
        columns: {{id: {{type: text}}}}
"""


@pytest.fixture
def api() -> Iterator[LocalApi]:
    with running_api() as local:
        yield local


@pytest.fixture
def run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, api: LocalApi, warehouse_url: str) -> Callable[..., Result]:
    specs = tmp_path / "specs"
    specs.mkdir()
    (specs / "c.yaml").write_text(SPEC.format(url=api.url, client_id=CLIENT[0]))
    engine = sa.create_engine(warehouse_url)
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE t (id INTEGER, note TEXT)")
    engine.dispose()
    monkeypatch.setenv("AGGREGATOR_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("AGGREGATOR_PIPELINES", str(specs))
    monkeypatch.setenv("AGGREGATOR_WAREHOUSE_URL", warehouse_url)
    monkeypatch.setenv("AGG_TEST_KEY", API_KEY)
    monkeypatch.setenv("AGG_TEST_CLIENT_SECRET", CLIENT[1])
    # A SQL source reads a database of its own: the warehouse is refused to sources (connectors/egress.py).
    source = sa.engine.make_url(warehouse_url)
    source = source.set(database=str(tmp_path / "source.db")) if source.get_backend_name() == "sqlite" \
        else source.set(database="postgres")
    monkeypatch.setenv("AGG_TEST_DB_URL", source.render_as_string(hide_password=False))

    def invoke(*args: str) -> Result:
        return CliRunner().invoke(main, list(args))

    return invoke


def test_check_resolves_env_secrets_like_a_run(run: Callable[..., Result], api: LocalApi) -> None:
    """The reported case: check sent the variable's *name* as the API key (401/403), died with
    `Attempted to directly retrieve environment variable` for OAuth2, and with a SQLAlchemy parse traceback
    for `url: {env: ...}`. All three now resolve the variables and pass."""
    for name in ("keyed", "oauth", "db"):
        result = run("connections", "check", name)
        assert result.exit_code == 0, result.output
        assert result.output.startswith("ok: ")
    assert api.state.hits["/auth/api_key_header"] == 1 and api.state.hits["/oauth/token"] == 1
    for secret in (API_KEY, CLIENT[1]):
        assert secret not in result.output


def test_a_missing_variable_is_one_clear_line(run: Callable[..., Result], monkeypatch: pytest.MonkeyPatch) -> None:
    """An unset variable names the connection, the field and the variable, without a traceback."""
    monkeypatch.delenv("AGG_TEST_CLIENT_SECRET")
    monkeypatch.delenv("AGG_TEST_DB_URL")
    oauth = run("connections", "check", "oauth")
    assert oauth.exit_code == 1
    assert oauth.output.strip() == (
        "Error: connection 'oauth': config.auth.client_secret reads environment variable AGG_TEST_CLIENT_SECRET, "
        "which is not set; set it here as the run's environment would"
    )
    db = run("connections", "discover", "db")
    assert db.exit_code == 1 and "config.url reads environment variable AGG_TEST_DB_URL" in db.output
    assert "Traceback" not in oauth.output + db.output


def test_a_wrong_key_fails_the_check(run: Callable[..., Result], monkeypatch: pytest.MonkeyPatch) -> None:
    """The check really authenticates: a wrong key is a failed check, not an 'ok'."""
    monkeypatch.setenv("AGG_TEST_KEY", "wrong")
    result = run("connections", "check", "keyed")
    assert result.exit_code == 1 and "HTTP 401" in result.output and "wrong" not in result.output


def test_the_warehouse_is_checkable_and_discoverable(run: Callable[..., Result]) -> None:
    """`connections check warehouse` answered `unknown connection 'warehouse'`."""
    checked = run("connections", "check", "warehouse")
    assert checked.exit_code == 0 and "connected" in checked.output
    found = run("connections", "discover", "warehouse")
    assert found.exit_code == 0
    assert {"t", "id", "integer", "note", "text"} <= set(found.output.split())


def test_discover_uses_the_resolved_key_and_declared_types(run: Callable[..., Result]) -> None:
    """Discovery reads the source's stream with the real key; `columns:` types win; timestamps are typed."""
    found = run("connections", "discover", "keyed")
    assert found.exit_code == 0, found.output
    rows = {tuple(line.split()[1:3]) for line in found.output.splitlines()[2:]}
    assert ("id", "text") in rows and ("updated_at", "timestamp") in rows and ("price", "float") in rows


def test_connection_types_are_listed_from_the_registry() -> None:
    """`aggregator connections types` lists what the registry holds: a registered type needs no CLI edit."""
    from connectors.registry import CONNECTOR_TYPES

    result = CliRunner().invoke(main, ["connections", "types"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].split() == ["type", "stream", "type", "incremental", "reads", "docs"]
    for connector in CONNECTOR_TYPES.values():
        row = next(line for line in lines[2:] if line.split()[0] == connector.name)
        assert connector.summary in row and f"docs/connectors/{connector.page}" in row
