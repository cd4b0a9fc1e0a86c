"""The path normalizer, client addresses behind trusted proxies, and what reaches Dagster's environment."""

from __future__ import annotations

import posixpath
import random
from pathlib import Path
from urllib.parse import unquote

import pytest

from aggregator.dev import SpecStoreUrlError, child_env, proxy_env
from aggregator.proxy.config import load_proxy_settings
from aggregator.proxy.transport.gateway import client_ip
from aggregator.proxy.transport.paths import PathRejected, encode_path, normalize_path
from aggregator.settings import load_settings

PIECES = ["a", "graphql", "sales", "orders", ".", "..", "%2e", "%2E%2e", "%2f", "%5C", "\\", ";", "%00", "%25",
          "%2e%2e%2f", "", "x y", "%C3%A9", "%ff", "report_asset_materialization", "~u", "%3B", "\t"]


def generated_paths(n: int = 3000, seed: int = 9) -> list[bytes]:
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        segments = [rng.choice(PIECES) for _ in range(rng.randint(0, 6))]
        out.append(("/" + "/".join(segments) + rng.choice(["", "/"])).encode("latin-1"))
    return out


def test_every_accepted_path_is_canonical_and_round_trips() -> None:
    """The class behind finding 2: whatever the normalizer accepts must mean the same to every later reader.
    A seeded generator mixes dot segments, encoded dots/slashes/backslashes, `;`, NUL, double encoding and
    invalid UTF-8; each accepted path has no dot segment and no empty segment, is its own normal form, and
    decodes (as Starlette in Dagster will) from the forwarded target to exactly the routed path."""
    accepted = 0
    for raw in generated_paths():
        try:
            path = normalize_path(raw)
        except PathRejected:
            continue
        accepted += 1
        body = path.rstrip("/") or "/"
        assert posixpath.normpath(body) == body, raw
        assert not any(s in (".", "..") for s in path.split("/")), raw
        assert "//" not in path and "\\" not in path and ";" not in path and "\x00" not in path, raw
        assert unquote(encode_path(path)) == path, raw
        assert normalize_path(encode_path(path).encode()) == path, raw
    assert accepted > 100  # the generator also produces plenty of clean paths


@pytest.mark.parametrize("raw", [b"/report_asset_materialization/x/../../graphql", b"/a/%2e%2e/graphql",
                                 b"/a%2fb", b"/a\\..\\graphql", b"/a;b", b"/a%00", b"/a/%252e%252e/b", b"a/b"])
def test_ambiguous_paths_are_refused(raw: bytes) -> None:
    with pytest.raises(PathRejected):
        normalize_path(raw)


def _scope(peer: str, forwarded: str | None) -> dict[str, object]:
    headers = [(b"x-forwarded-for", forwarded.encode())] if forwarded else []
    return {"type": "http", "client": (peer, 5555), "headers": headers}


@pytest.mark.parametrize(("trusted", "peer", "forwarded", "expected"), [
    ("", "10.0.0.5", "1.2.3.4", "10.0.0.5"),  # no trusted proxies: the header is ignored
    ("10.0.0.0/8", "192.0.2.9", "1.2.3.4", "192.0.2.9"),  # header from an untrusted peer: ignored
    ("10.0.0.0/8", "10.0.0.5", "1.2.3.4", "1.2.3.4"),
    ("10.0.0.0/8", "10.0.0.5", "6.6.6.6, 1.2.3.4", "1.2.3.4"),  # left entries are the client's own claims
    ("10.0.0.0/8,172.16.0.0/12", "10.0.0.5", "6.6.6.6, 1.2.3.4, 172.16.0.3", "1.2.3.4"),
    ("10.0.0.0/8", "10.0.0.5", "not-an-ip", "invalid-forwarded-for"),
])
def test_x_forwarded_for_cannot_be_trusted_in_any_deployment(trusted: str, peer: str, forwarded: str,
                                                             expected: str) -> None:
    """Finding (issue 15.5): behind an ingress every client shared the balancer's address, and without a
    trusted-proxy setting X-Forwarded-For could not be used safely. AGGREGATOR_TRUSTED_PROXIES names the
    balancers; the right-most address not in them is the client."""
    settings = load_proxy_settings("http://127.0.0.1:1", Path("/nonexistent"),
                                   environ={"AGGREGATOR_TRUSTED_PROXIES": trusted})
    assert client_ip(_scope(peer, forwarded), settings) == expected


def test_bad_trusted_proxy_cidr_names_the_variable() -> None:
    with pytest.raises(ValueError, match="AGGREGATOR_TRUSTED_PROXIES"):
        load_proxy_settings("http://127.0.0.1:1", Path("/nonexistent"),
                            environ={"AGGREGATOR_TRUSTED_PROXIES": "10.0.0.0/33"})


def test_admin_password_stays_in_the_environment_of_dagster_processes(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """Weaker finding: AGGREGATOR_ADMIN_PASSWORD reached the webserver, daemon, code servers and every run
    worker (pipeline code could read it). `aggregator dev` now gives the proxy's secrets only to the proxy."""
    monkeypatch.setenv("AGGREGATOR_HOME", str(tmp_path))
    for name in ("AGGREGATOR_ADMIN_PASSWORD", "AGGREGATOR_PROXY_DB_URL", "AGGREGATOR_OIDC_CLIENT_SECRET",
                 "AGGREGATOR_TRUSTED_PROXIES"):
        monkeypatch.setenv(name, "secret-value")
    settings = load_settings()
    # The spec store lives in the proxy's database: a server's URL (with its credentials) is never handed to
    # Dagster processes by default; dev asks for a read-only AGGREGATOR_SPECS_DB_URL instead.
    with pytest.raises(SpecStoreUrlError, match="AGGREGATOR_SPECS_DB_URL"):
        child_env(settings, tmp_path / "dagster")
    monkeypatch.setenv("AGGREGATOR_SPECS_DB_URL", "postgresql://spec_reader@db/platform")
    settings = load_settings()
    dagster = child_env(settings, tmp_path / "dagster")
    proxy = child_env(settings, tmp_path / "dagster", proxy=True)
    assert "secret-value" not in dagster.values()
    assert dagster["AGGREGATOR_SPECS_DB_URL"] == "postgresql://spec_reader@db/platform"
    assert proxy["AGGREGATOR_ADMIN_PASSWORD"] == "secret-value"
    assert dagster["DAGSTER_HOME"] == proxy["DAGSTER_HOME"]
    # The default, one machine: the proxy's SQLite file, which every process here can open anyway.
    monkeypatch.delenv("AGGREGATOR_SPECS_DB_URL")
    monkeypatch.delenv("AGGREGATOR_PROXY_DB_URL")
    dagster = child_env(load_settings(), tmp_path / "dagster")
    assert "secret-value" not in dagster.values() and dagster["AGGREGATOR_SPECS_DB_URL"].startswith("sqlite:///")


@pytest.mark.parametrize(("host", "origin"), [("127.0.0.1", "http://127.0.0.1:3000"),
                                              ("0.0.0.0", "http://localhost:3000")])  # noqa: S104 (the listen address under test)
def test_aggregator_dev_configures_its_public_origin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, host: str,
                                                     origin: str) -> None:
    """Weaker finding: without a public origin the CSRF check trusted the Host header; `aggregator dev` now
    always gives the proxy one (unless the operator set their own)."""
    monkeypatch.setenv("AGGREGATOR_HOME", str(tmp_path))
    monkeypatch.delenv("AGGREGATOR_PROXY_PUBLIC_ORIGIN", raising=False)
    assert proxy_env(load_settings(), host, 3000)["AGGREGATOR_PROXY_PUBLIC_ORIGIN"] == origin
    monkeypatch.setenv("AGGREGATOR_PROXY_PUBLIC_ORIGIN", "https://data.example.com")
    assert proxy_env(load_settings(), host, 3000)["AGGREGATOR_PROXY_PUBLIC_ORIGIN"] == "https://data.example.com"


def test_document_limits_hold_on_the_token_stream_and_the_tree() -> None:
    """The class behind finding 6: each limit is enforced by the token pre-scan (which stops early) and
    again on the parsed tree, and none of them refuses the Dagster UI's own documents."""
    from collections.abc import Callable

    from graphql import parse

    from aggregator.proxy.graphql_ops import DocumentLimits, GraphQLRejected, check_limits, prescan

    limits = DocumentLimits()
    over: dict[str, str] = {
        "aliases": "{ instance { " + " ".join(f"a{i}: hasInfo" for i in range(limits.max_aliases + 1)) + " } }",
        "levels": "{ instance " + "{ runLauncher " * limits.max_depth + "{ name" + " }" * (limits.max_depth + 2),
        "times": "{ instance { " + " hasInfo" * (limits.max_same_name + 1) + " } }",
    }
    checks: list[Callable[[str], object]] = [lambda q: prescan(q, limits),
                                             lambda q: check_limits(parse(q), limits)]
    for word, query in over.items():
        for check in checks:
            with pytest.raises(GraphQLRejected, match=word):
                check(query)
    # Inline fragments, directives and aliased fields do not count as repeats of one field.
    fine = ("query Q($x: Boolean!) { a: runOrError(runId: \"1\") { ... on Run { runId } ... on PythonError "
            "{ message } } b: runOrError(runId: \"2\") { ... on Run { runId @include(if: $x) } } }")
    for check in checks:
        check(fine)
    ui_documents = _ui_documents()
    assert len(ui_documents) > 100
    for doc in ui_documents:
        prescan(doc, limits)
        check_limits(parse(doc), limits)


def _ui_documents() -> list[str]:
    """The GraphQL documents in the installed Dagster UI bundle (tagged-template parts, joined)."""
    import json
    import re

    import dagster_webserver

    build = Path(dagster_webserver.__file__).parent / "webapp" / "build"
    string = r'"(?:[^"\\]|\\.)*"'
    found: set[str] = set()
    for path in build.rglob("*.js"):
        text = path.read_text(encoding="utf-8", errors="replace")
        for match in re.finditer(r"\(\[(" + string + r"(?:," + string + r")*)\]\)", text):
            try:
                body = "".join(json.loads("[" + match.group(1) + "]"))
            except ValueError:
                continue
            if re.match(r"^\s*(query|mutation|subscription|fragment)\s+\w", body):
                found.add(body)
    return sorted(found)


def test_concurrent_identical_documents_share_one_validation() -> None:
    """Found by bench/proxy.py: ten clients sending the same new document at once overflowed the
    validation queue (503). Identical documents in flight now share one validation; distinct ones beyond
    the queue are still refused at once."""
    import asyncio

    from aggregator.proxy.graphql_ops import GraphQLBusy, GraphQLInspector, ParsedDocument, dagster_schema

    inspector = GraphQLInspector(dagster_schema(), workers=1, queue=0)

    Results = list[ParsedDocument | BaseException]

    async def main() -> tuple[Results, Results]:
        same = await asyncio.gather(*(inspector.inspect_async("{ version }") for _ in range(20)),
                                    return_exceptions=True)
        distinct = await asyncio.gather(*(inspector.inspect_async(f"{{ v{i}: version }}") for i in range(5)),
                                        return_exceptions=True)
        return same, distinct

    try:
        same, distinct = asyncio.run(main())
    finally:
        inspector.close()
    assert all(not isinstance(r, Exception) for r in same), same
    assert any(isinstance(r, GraphQLBusy) for r in distinct)
