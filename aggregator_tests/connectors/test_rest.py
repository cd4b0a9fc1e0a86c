"""RestApiResource against a real local HTTP API: pagination, auth, retries, budget, incremental, children."""

from __future__ import annotations

import time

import dagster as dg
import pytest

from aggregator_tests.testapi import API_KEY, BASIC, BEARER, CLIENT, LocalApi, make_item
from connectors.errors import AuthError, ConnectorConfigError, HttpRequestError, SourceReadError
from connectors.rest import RestApiResource, RestStream


def resource(api: LocalApi, **kwargs: object) -> RestApiResource:
    kwargs.setdefault("requests_per_second", None)
    kwargs.setdefault("backoff_seconds", 0.01)
    return RestApiResource(base_url=api.url, **kwargs)  # type: ignore[arg-type]


def ids(batches: list) -> list[int]:
    return [row[0] for batch in batches for row in batch.rows]


PAGINATION = {
    "page_number": ({"type": "page_number", "page_size": 10, "total_pages_path": "total_pages"}, "data"),
    "offset": ({"type": "offset", "limit": 10, "total_path": "total"}, "items"),
    "cursor": ({"type": "cursor", "cursor_path": "meta.next_cursor"}, "data"),
    "next_url": ({"type": "next_url", "next_url_path": "links.next"}, "results"),
    "link_header": ({"type": "link_header"}, "$"),
    "has_more": ({"type": "page_number", "page_size_param": None, "has_more_path": "has_more"}, "data"),
}


@pytest.mark.parametrize("style", sorted(PAGINATION))
def test_every_pagination_style_reads_each_record_once_in_bounded_batches(api: LocalApi, style: str) -> None:
    pagination, records_path = PAGINATION[style]
    stream = RestStream(path=f"/items/{style}", pagination=pagination, records_path=records_path, batch_size=7)
    batches = list(resource(api).read(stream))
    assert ids(batches) == list(range(1, 26))
    assert all(len(b.rows) <= 7 + 10 for b in batches)  # a batch is bounded by batch_size plus one page
    assert len(batches) > 1
    assert batches[0].columns == ("id", "name", "price", "active", "updated_at")
    assert api.state.hits[f"/items/{style}"] == 3  # 25 records in pages of 10, no extra request


def test_empty_page_stops_without_a_total(api: LocalApi) -> None:
    api.state.items = api.state.items[:20]  # full pages only: no short page ends the stream
    stream = RestStream(path="/items/page_number", records_path="data", pagination={"type": "page_number", "page_size": 10})
    assert ids(list(resource(api).read(stream))) == list(range(1, 21))
    assert api.state.hits["/items/page_number"] == 3  # the 3rd page is empty and ends the stream


def test_max_pages_stops_early(api: LocalApi) -> None:
    stream = RestStream(path="/items/offset", records_path="items", pagination={"type": "offset", "limit": 10, "max_pages": 2})
    assert ids(list(resource(api).read(stream))) == list(range(1, 21))


AUTH = {
    "api_key_header": {"type": "api_key", "name": "X-API-Key", "key": dg.EnvVar("TEST_API_KEY")},
    "api_key_query": {"type": "api_key", "name": "api_key", "location": "query", "key": dg.EnvVar("TEST_API_KEY")},
    "bearer": {"type": "bearer", "token": dg.EnvVar("TEST_BEARER")},
    "basic": {"type": "basic", "username": BASIC[0], "password": dg.EnvVar("TEST_BASIC_PASSWORD")},
}


@pytest.fixture
def secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_API_KEY", API_KEY)
    monkeypatch.setenv("TEST_BEARER", BEARER)
    monkeypatch.setenv("TEST_BASIC_PASSWORD", BASIC[1])
    monkeypatch.setenv("TEST_CLIENT_SECRET", CLIENT[1])


def _materialize_read(res: RestApiResource, stream: RestStream) -> list[int]:
    """Read inside a real Dagster run, so dg.EnvVar secrets are resolved the way production resolves them."""
    seen: list[int] = []

    @dg.asset
    def probe(api: RestApiResource) -> None:
        seen.extend(ids(list(api.read(stream))))

    assert dg.materialize([probe], resources={"api": res}).success
    return seen


@pytest.mark.parametrize("kind", sorted(AUTH))
def test_auth_styles_with_secrets_from_the_environment(api: LocalApi, secrets: None, kind: str) -> None:
    stream = RestStream(path=f"/auth/{kind}", records_path="data")
    assert _materialize_read(resource(api, auth=AUTH[kind]), stream) == [1, 2, 3, 4, 5]
    with pytest.raises(AuthError, match=r"HTTP 401.*") as info:
        list(resource(api).read(stream))  # no credentials
    assert info.value.attempts == 1  # a 401 is not retried


def test_oauth2_client_credentials_refreshes_an_expired_token(api: LocalApi, secrets: None) -> None:
    api.state.token_ttl = 1.0
    auth = {"type": "oauth2_client_credentials", "token_url": f"{api.url}/oauth/token",
            "client_id": CLIENT[0], "client_secret": dg.EnvVar("TEST_CLIENT_SECRET")}
    res = resource(api, auth=auth)
    stream = RestStream(path="/auth/oauth2", records_path="data")

    @dg.asset
    def probe(api: RestApiResource) -> None:
        assert ids(list(api.read(stream))) == [1, 2, 3, 4, 5]
        time.sleep(1.2)  # the token expires; authlib must fetch a new one before the next request
        assert ids(list(api.read(stream))) == [1, 2, 3, 4, 5]
        assert api_state.hits["/auth/oauth2"] == 2  # no request went out with the expired token
        api_state.token_ttl = 3600
        api_state.tokens.clear()  # the server revokes every token early: a 401 makes us fetch a new one
        assert ids(list(api.read(stream))) == [1, 2, 3, 4, 5]

    api_state = api.state
    assert dg.materialize([probe], resources={"api": res}).success
    assert api.state.hits["/oauth/token"] == 3
    assert api.state.hits["/auth/oauth2"] == 4


def test_oauth2_bad_client_secret_is_a_clear_auth_error(api: LocalApi, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_CLIENT_SECRET", "wrong")
    auth = {"type": "oauth2_client_credentials", "token_url": f"{api.url}/oauth/token",
            "client_id": CLIENT[0], "client_secret": "wrong"}
    with pytest.raises(AuthError, match="could not obtain an OAuth2 token"):
        list(resource(api, auth=auth).read(RestStream(path="/auth/oauth2")))


def test_429_waits_for_retry_after(api: LocalApi) -> None:
    started = time.monotonic()
    batches = list(resource(api).read(RestStream(path="/rate_limited", records_path="data")))
    assert ids(batches) == [1, 2, 3]
    assert time.monotonic() - started >= 0.95  # Retry-After: 1, not the 10 ms backoff
    assert api.state.hits["/rate_limited"] == 2


def test_intermittent_500s_are_retried(api: LocalApi) -> None:
    assert ids(list(resource(api, max_attempts=3).read(RestStream(path="/flaky/2", records_path="data")))) == [1, 2, 3]
    assert api.state.hits["/flaky/2"] == 3


def test_final_error_names_sanitized_url_status_and_attempts(api: LocalApi, secrets: None) -> None:
    auth = {"type": "api_key", "name": "X-Custom-Key", "location": "query", "key": API_KEY}
    stream = RestStream(path="/flaky/100", params={"q": "x"})
    with pytest.raises(HttpRequestError) as info:
        list(resource(api, max_attempts=3, auth=auth).read(stream))
    message = str(info.value)
    assert f"GET {api.url}/flaky/100?" in message and "q=x" in message
    assert "HTTP 500" in message and "after 3 attempts" in message
    assert API_KEY not in message and "X-Custom-Key=***" in message
    assert (info.value.status, info.value.attempts) == (500, 3)


def test_timeouts_are_retried_then_reported(api: LocalApi) -> None:
    stream = RestStream(path="/slow", params={"seconds": "1"})
    with pytest.raises(HttpRequestError, match=r"after 2 attempts: ReadTimeout"):
        list(resource(api, max_attempts=2, timeout_seconds=0.2).read(stream))
    assert api.state.hits["/slow"] == 2


def test_4xx_is_not_retried(api: LocalApi) -> None:
    with pytest.raises(HttpRequestError, match=r"/missing failed after 1 attempt: HTTP 404 Not Found"):
        list(resource(api).read(RestStream(path="/missing")))


def test_malformed_json_names_the_url(api: LocalApi) -> None:
    with pytest.raises(SourceReadError, match=rf"{api.url}/malformed: response is not valid JSON"):
        list(resource(api).read(RestStream(path="/malformed", records_path="data")))


def test_request_budget_spaces_requests(api: LocalApi) -> None:
    stream = RestStream(path="/items/page_number", records_path="data",
                        pagination={"type": "page_number", "page_size": 2, "total_pages_path": "total_pages"})
    started = time.monotonic()
    assert len(ids(list(resource(api, requests_per_second=25).read(stream)))) == 25
    # 13 requests at 25/s: the 13th may start no earlier than 12/25 s after the first.
    assert time.monotonic() - started >= 12 / 25


def test_incremental_cursor_templated_into_params(api: LocalApi) -> None:
    stream = RestStream(path="/incremental", records_path="data", params={"since": "{cursor}"},
                        pagination={"type": "page_number", "page_size_param": None},
                        incremental={"cursor_path": "updated_at"})
    res = resource(api)
    first = list(res.read(stream))
    assert ids(first) == list(range(1, 26))
    assert "since" not in api.state.seen[0]  # no cursor yet: the parameter is left out
    state = first[-1].state
    assert state == {"cursor": "2024-01-25T00:00:00"}
    assert all(b.state is None for b in first[:-1])
    assert list(res.read(stream, state=state)) == []  # nothing new
    api.state.items.append(make_item(26))
    again = list(res.read(stream, state=state))
    assert ids(again) == [26] and again[-1].state == {"cursor": "2024-01-26T00:00:00"}
    assert api.state.seen[-1]["since"] == "2024-01-25T00:00:00"


def test_window_is_templated_into_params(api: LocalApi) -> None:
    import datetime as dt

    stream = RestStream(path="/incremental", records_path="data",
                        params={"start": "{window_start}", "end": "{window_end}"})
    window = (dt.datetime(2024, 1, 3), dt.datetime(2024, 1, 6))
    assert ids(list(resource(api).read(stream, window=window))) == [3, 4, 5]


def test_templates_in_headers_and_post_body(api: LocalApi) -> None:
    stream = RestStream(path="/echo", method="POST", records_path="data", headers={"X-Since": "{cursor}"},
                        json_body={"filter": {"since": "{cursor}", "fixed": 1}},
                        incremental={"cursor_path": "header", "initial_value": "2024-01-01"})
    (batch,) = resource(api).read(stream)
    row = dict(zip(batch.columns, batch.rows[0]))
    assert str(row["header"]) == "2024-01-01"  # an ISO date string is typed as a date
    assert '"since":"2024-01-01"' in row["body"] and '"fixed":1' in row["body"]


def test_unknown_placeholder_is_a_config_error() -> None:
    with pytest.raises(ValueError, match=r"unknown placeholder \{cursr\}"):
        RestStream(path="/x", params={"since": "{cursr}"})


def test_parent_child_streams(api: LocalApi) -> None:
    stream = RestStream(path="/users/{parent.id}/orders", parent=RestStream(path="/users", records_path="users"),
                        parent_fields={"user_id": "id"})
    (batch,) = resource(api).read(stream)
    assert batch.columns == ("user_id", "order", "amount")
    assert batch.rows == [(1, 100, 0.0), (2, 200, 0.0), (2, 201, 2.5), (3, 300, 0.0), (3, 301, 2.5), (3, 302, 5.0)]


def test_next_url_to_another_origin_is_refused(api: LocalApi) -> None:
    stream = RestStream(path="/elsewhere", records_path="results", pagination={"type": "next_url", "next_url_path": "links.next"})
    with pytest.raises(SourceReadError, match="leaves .* origin"):
        list(resource(api).read(stream))


def test_check_and_discover(api: LocalApi) -> None:
    res = resource(api, check_path="/items/offset")
    assert res.check().startswith(f"GET {api.url}/items/offset: HTTP 200")
    (info,) = res.discover(RestStream(path="/items/offset", records_path="items"))
    assert {k: v.value for k, v in info.columns.items()} == {
        "id": "integer", "name": "text", "price": "float", "active": "boolean", "updated_at": "timestamp"}
    with pytest.raises(HttpRequestError, match="HTTP 404"):
        resource(api, check_path="/missing").check()


def test_invalid_records_path_is_a_config_error() -> None:
    with pytest.raises(ValueError, match="invalid JSON path"):
        RestStream(path="/x", records_path="data..items")
    assert issubclass(ConnectorConfigError, ValueError)
