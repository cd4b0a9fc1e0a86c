"""Contract test: schemathesis generates requests from /api/openapi.json of the running proxy; none may 500.

Bounded (a few examples per operation, no shrinking database) so it stays well under a minute; it runs as
an admin (requests reach the handlers), as a scoped editor (the scope checks) and anonymously (the auth layer)."""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings

from aggregator_tests.proxy.api.conftest import ApiStack, event_budgets

EXAMPLES_PER_OPERATION = 8


@pytest.mark.parametrize("who", ["admin", "sales_editor", None])
def test_no_server_errors(api_stack: ApiStack, who: str | None) -> None:
    # Live event streams end after a second here (they would otherwise last until their idle limit).
    with event_budgets(api_stack, events_max_s=1.0, events_poll_s=0.2):
        _no_server_errors(api_stack, who)


def _no_server_errors(api_stack: ApiStack, who: str | None) -> None:
    schema = schemathesis.openapi.from_url(f"{api_stack.url}/api/openapi.json", timeout=60)
    headers = {"Authorization": f"Bearer {api_stack.tokens[who]}"} if who else {}
    failures: list[str] = []
    operations = [result.ok() for result in schema.get_all_operations()]  # type: ignore[union-attr]
    assert len(operations) >= 15

    for operation in operations:
        @settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None, database=None, derandomize=True,
                  phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
        @given(case=operation.as_strategy())
        def run(case: schemathesis.Case) -> None:
            response = case.call(base_url=api_stack.url, headers=headers, timeout=120)
            if response.status_code >= 500:
                failures.append(f"{case.method} {case.formatted_path} -> {response.status_code}: "
                                f"{response.text[:300]}")

        run()
    assert failures == []


def test_openapi_document_names_every_route(api_stack: ApiStack) -> None:
    with api_stack.client(None) as c:
        doc = c.get("/api/openapi.json").json()
    assert doc["openapi"].startswith("3.1")
    declared = {(m.upper(), p) for p, ops in doc["paths"].items() for m in ops}
    api = api_stack.proxy.app.api
    assert declared == {(r.method, r.path) for r in api.routes} | {(d.method, d.path) for d in api.documented}
    # Every operation names the role it needs, machine-readably and in prose.
    for ops in doc["paths"].values():
        for op in ops.values():
            assert op["x-role"] in ("public", "viewer", "launcher", "editor", "admin"), op
            assert ("Public" if op["x-role"] == "public" else f"`{op['x-role']}`") in op["description"], op
    # Every body and answer is described by a pydantic-generated schema.
    assert {"PipelineCreate", "QueryRequest", "ErrorBody", "WriteResult"} <= set(doc["components"]["schemas"])
