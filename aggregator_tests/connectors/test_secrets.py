"""`{env: NAME}`: one resolver, and the rule on which names a spec may read (connectors/secrets.py)."""

from __future__ import annotations

import base64
import binascii
import json
import re
from pathlib import Path
from urllib.parse import quote

import dagster as dg
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aggregator.pipelines.alerts_spec import SlackChannel
from aggregator.pipelines.connections import Connection, build_resource
from aggregator.pipelines.isolate import load_isolated
from aggregator.pipelines.validate import validate
from aggregator.settings import load_settings
from connectors.secrets import (
    MissingSecretError,
    Resolver,
    SecretNameError,
    SecretPolicy,
    env_refs,
    is_reserved,
)

# Every variable the platform itself reads or deploys with; none may be named by a spec.
PLATFORM_VARIABLES = [
    "AGGREGATOR_ADMIN_PASSWORD", "AGGREGATOR_PROXY_DB_URL", "AGGREGATOR_OIDC_CLIENT_SECRET",
    "AGGREGATOR_WORKER_TOKEN", "AGGREGATOR_PLATFORM_DB_URL", "AGGREGATOR_WAREHOUSE_URL", "DAGSTER_PG_URL",
    "DAGSTER_HOME", "PGPASSWORD", "PGHOST", "POSTGRES_SUPERUSER_PASSWORD", "PROXY_DB_PASSWORD",
    "DAGSTER_DB_PASSWORD", "WAREHOUSE_DB_PASSWORD", "BACKUP_DB_PASSWORD", "aggregator_admin_password",
]


@pytest.mark.parametrize("name", PLATFORM_VARIABLES)
def test_platform_variables_are_reserved_whatever_the_allowlist(name: str) -> None:
    assert is_reserved(name)
    for policy in (SecretPolicy(), SecretPolicy(("*",)), SecretPolicy((name,)), SecretPolicy(("AGGREGATOR_*",))):
        reason = policy.refusal(name)
        assert reason is not None and "reserved for the platform" in reason


@pytest.mark.parametrize("name", ["SALES_API_TOKEN", "SHOP_DB_URL", "PG_SALES_URL", "MY_DAGSTER_TOKEN"])
def test_pipeline_secrets_are_allowed_by_default(name: str) -> None:
    assert SecretPolicy.from_env({}).refusal(name) is None


def test_the_allowlist_takes_names_and_prefixes() -> None:
    policy = SecretPolicy.from_env({"AGGREGATOR_SECRET_NAMES": "SALES_*, SHOP_DB_URL"})
    assert policy.refusal("SALES_API_TOKEN") is None and policy.refusal("SHOP_DB_URL") is None
    reason = policy.refusal("SHOP_DB_URL2")
    assert reason is not None and "AGGREGATOR_SECRET_NAMES allows SALES_*, SHOP_DB_URL" in reason


def test_resolving_remembers_values_for_redaction_and_refuses_before_reading() -> None:
    environ = {"SALES_TOKEN": "tok-1234567", "AGGREGATOR_ADMIN_PASSWORD": "admin-canary-99"}
    resolver = Resolver(environ)
    tree = {"auth": {"type": "bearer", "token": {"env": "SALES_TOKEN"}}, "list": [{"env": "SALES_TOKEN"}]}
    assert resolver.resolve(tree, "connection 'api'") == {
        "auth": {"type": "bearer", "token": "tok-1234567"}, "list": ["tok-1234567"]}
    assert resolver.redact("Invalid URL 'tok-1234567x'") == "Invalid URL '***x'"
    with pytest.raises(SecretNameError) as refused:
        resolver.resolve({"base_url": {"env": "AGGREGATOR_ADMIN_PASSWORD"}}, "connection 'api'", ("config",))
    assert refused.value.path == ("config", "base_url")
    assert str(refused.value).startswith("connection 'api': config.base_url: environment variable "
                                         "AGGREGATOR_ADMIN_PASSWORD is reserved")
    assert "admin-canary-99" not in str(refused.value) and "admin-canary-99" not in resolver.values
    with pytest.raises(MissingSecretError, match="config.url reads environment variable UNSET_X, which is not set"):
        resolver.resolve({"url": {"env": "UNSET_X"}}, "connection 'db'", ("config",))


def _decodings(text: str) -> list[bytes]:
    """Every base64 reading (both alphabets, each of the 4 character alignments) of each run of base64
    characters in `text`: what someone holding the redacted text could decode."""
    found: list[bytes] = []
    for run in re.findall(r"[A-Za-z0-9+/_-]{4,}", text):
        for start in range(4):
            part = run[start:]
            part = part[: len(part) - len(part) % 4]
            for alphabet in (part, part.replace("-", "+").replace("_", "/")):
                try:
                    found.append(base64.b64decode(alphabet, validate=True))
                except (binascii.Error, ValueError):
                    pass
    return found


# Where a connector may echo a secret: raw, in a URL, in a JSON document, hex, base64 (Basic auth, payloads).
ENCODINGS = {
    "raw": lambda b: b.decode(),
    "percent": lambda b: quote(b.decode(), safe=""),
    "json": lambda b: json.dumps(b.decode()),
    "hex": lambda b: b.hex(),
    "base64": lambda b: base64.b64encode(b).decode(),
    "base64url": lambda b: base64.urlsafe_b64encode(b).decode(),
}
printable = st.text(st.characters(min_codepoint=33, max_codepoint=126), min_size=0, max_size=12)


@settings(max_examples=300, deadline=None)
@given(secret=st.text(st.characters(min_codepoint=33, max_codepoint=0x2FF), min_size=8, max_size=40),
       before=printable, after=printable, encoding=st.sampled_from(sorted(ENCODINGS)))
def test_redaction_hides_a_secret_in_every_encoding_and_alignment(secret: str, before: str, after: str,
                                                                  encoding: str) -> None:
    """Generated: a resolved secret inside any text (e.g. `user:<secret>` of HTTP Basic auth), encoded as
    connectors and echoing peers encode it, cannot be read back from the redacted text by any decoding."""
    resolver = Resolver({"TOKEN": secret})
    resolver.resolve({"token": {"env": "TOKEN"}}, "connection 'api'")
    shown = resolver.redact(ENCODINGS[encoding]((before + secret + after).encode()))
    assert "***" in shown
    assert secret not in shown and secret.encode().hex() not in shown.lower()
    assert json.dumps(secret)[1:-1] not in shown
    assert not any(secret.encode() in decoded for decoded in _decodings(shown))


def test_basic_auth_credentials_are_redacted_in_an_echoed_header() -> None:
    """The reported case: an echoing endpoint returns `Authorization: Basic base64(user:secret)`."""
    resolver = Resolver({"API_PASSWORD": "s3cret-canary-42"})
    resolver.resolve({"password": {"env": "API_PASSWORD"}}, "connection 'api'")
    header = "Basic " + base64.b64encode(b"reporter:s3cret-canary-42").decode()
    shown = resolver.redact(json.dumps({"headers": {"Authorization": header}}))
    assert "***" in shown and not any(b"s3cret-canary-42" in d for d in _decodings(shown))


def test_deferred_references_become_env_vars_after_the_name_check() -> None:
    resolver = Resolver({})
    assert resolver.deferred({"token": {"env": "SALES_TOKEN"}}, "connection") == {"token": dg.EnvVar("SALES_TOKEN")}
    with pytest.raises(SecretNameError):
        resolver.deferred({"token": {"env": "DAGSTER_PG_URL"}}, "connection")
    assert env_refs({"a": [{"b": {"env": "X"}}]}) == [(("a", 0, "b"), "X")]


def test_building_a_connection_resolves_through_the_policy(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGGREGATOR_ADMIN_PASSWORD", "admin-canary-77")
    conn = Connection.model_validate({"type": "rest", "config": {
        "base_url": "https://api.example.com", "auth": {"type": "bearer", "token": {"env": "AGGREGATOR_ADMIN_PASSWORD"}}}})
    for resolve_as in (None, "api"):
        with pytest.raises(SecretNameError) as refused:
            build_resource(conn, resolve_as=resolve_as)
        assert "admin-canary-77" not in str(refused.value)


def test_a_reserved_name_is_a_spec_error_at_its_line(tmp_path: Path) -> None:
    (tmp_path / "api.yaml").write_text(
        "connections:\n  api:\n    type: rest\n    config:\n"
        "      base_url: {env: AGGREGATOR_PROXY_DB_URL}\n"
        "pipelines:\n  - name: api\n    sources:\n      - name: a\n        connection: api\n"
        "        stream: {type: rest, path: x}\n")
    loaded = load_isolated(tmp_path, load_settings({"AGGREGATOR_HOME": str(tmp_path / "home")}))
    errors = [e for e in loaded.errors if e.field == "connections.api.config.base_url"]
    assert errors and errors[0].line == 5 and "reserved for the platform" in errors[0].message
    assert "api" in loaded.dropped


def test_alert_channels_obey_the_same_rule() -> None:
    with pytest.raises(ValueError, match="reserved for the platform"):
        SlackChannel.model_validate({"type": "slack", "url": {"env": "AGGREGATOR_OIDC_CLIENT_SECRET"}})
    assert SlackChannel.model_validate({"type": "slack", "url": {"env": "SLACK_WEBHOOK_URL"}})


def test_validation_without_an_environment_says_nothing_about_variables(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The proxy validates specs for viewers: which variables exist must not be answerable there."""
    monkeypatch.setenv("AGG_TEST_PRESENT", "x")
    monkeypatch.delenv("AGG_TEST_ABSENT", raising=False)
    (tmp_path / "c.yaml").write_text(
        "connections:\n  a: {type: sql, config: {url: {env: AGG_TEST_PRESENT}}}\n"
        "  b: {type: sql, config: {url: {env: AGG_TEST_ABSENT}}}\n")
    settings = load_settings({"AGGREGATOR_HOME": str(tmp_path / "home")})
    assert validate(tmp_path, settings).ok
    in_pipelines_env = validate(tmp_path, settings, {"AGG_TEST_PRESENT": "x"})
    assert [e.field for e in in_pipelines_env.errors] == ["connections.b.config.url"]
