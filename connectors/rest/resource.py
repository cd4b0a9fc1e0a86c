"""An HTTP JSON API as a Dagster resource: paginated, authenticated, rate-limited, retried, incremental."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Generator, Iterator
from typing import Any

import dagster as dg
import requests
from pydantic import Field, PrivateAttr

from connectors.batches import Batch, StreamInfo
from connectors.errors import ConnectorConfigError, ConnectorError, HttpRequestError, SourceReadError
from connectors.jsonpath import find, parse_path
from connectors.prefetch import prefetch
from connectors.records import TypeHints, TypeTracker
from connectors.redact import sanitize_url
from connectors.rest.auth import AuthConfig, Authenticator, NoAuth, auth_from_dict
from connectors.rest.config import RestStream
from connectors.rest.http import HttpClient, RateLimiter, RetryPolicy
from connectors.rest.pagination import paginator_for
from connectors.rest.templates import render, render_path
from connectors.state_values import later
from connectors.strict import reject_unknown

Page = list[dict[str, Any]]


class RestApiResource(dg.ConfigurableResource):
    """A JSON API below `base_url`, read page by page through one pooled `requests` session."""

    base_url: str = Field(description="API root, e.g. https://api.example.com/v1; stream paths are relative to it.")
    auth: AuthConfig = Field(
        default_factory=lambda: NoAuth.model_validate({}), discriminator="type",
        description="none, api_key, bearer, basic or oauth2_client_credentials; secrets as {env: NAME}.",
    )
    headers: dict[str, str] = Field(default_factory=dict, description="Headers sent with every request.")
    requests_per_second: float | None = Field(
        None, gt=0,
        description="Optional fixed request budget: at most this many requests start per second. Default none: "
        "as fast as the API answers, slowing down adaptively on 429/503 and honouring Retry-After.",
    )
    timeout_seconds: float = Field(30.0, gt=0, description="Connect and read timeout of each request.")
    max_attempts: int = Field(5, ge=1, description="Attempts per request before giving up (retries + 1).")
    backoff_seconds: float = Field(0.5, ge=0, description="First retry delay; doubles each retry, with jitter.")
    backoff_max_seconds: float = Field(30.0, ge=0, description="Cap on a single retry delay.")
    max_retry_after_seconds: float = Field(
        120.0, ge=0, description="Fail instead of waiting when a 429/503's Retry-After asks for longer than this."
    )
    verify_tls: bool = Field(True, description="Verify TLS certificates.")
    check_path: str = Field(
        "",
        description="Path below base_url that `connections check` GETs with the connection's auth, e.g. 'health' or "
        "'me'. Unset: base_url itself, where a 404/405 only proves the host answers (the check says so).",
    )

    _client: HttpClient | None = PrivateAttr(default=None)

    def __init__(self, **data: Any) -> None:
        reject_unknown(type(self), data)
        if "auth" in data:
            data["auth"] = auth_from_dict(data["auth"])
        super().__init__(**data)

    @property
    def client(self) -> HttpClient:
        # One pooled session per resource instance: connections are reused across pages and streams.
        if self._client is None:
            self._client = HttpClient(
                Authenticator(self.auth),
                RateLimiter(self.requests_per_second),
                RetryPolicy(self.max_attempts, self.backoff_seconds, self.backoff_max_seconds,
                            self.max_retry_after_seconds),
                self.timeout_seconds,
                self.verify_tls,
            )
            self._client.session.headers.update(self.headers)
        return self._client

    def url(self, path: str) -> str:
        return f"{self.base_url.rstrip('/')}/{path.lstrip('/')}" if path else self.base_url

    def check(self) -> str:
        """One authenticated request to `check_path`; raises HttpRequestError/AuthError naming what failed."""
        url = self.url(self.check_path)
        try:
            response = self.client.request("GET", url)
        except HttpRequestError as exc:
            # Many APIs have nothing at their root: without a check_path, a 404/405 there is still an answer.
            if self.check_path or exc.status not in (404, 405):
                raise
            return (f"GET {sanitize_url(url)}: HTTP {exc.status}: the API answers, but base_url is no endpoint, so "
                    "the credentials are unproven; set check_path to an endpoint the connection reads")
        elapsed = response.elapsed.total_seconds() * 1000
        return f"GET {sanitize_url(url)}: HTTP {response.status_code} in {elapsed:.0f} ms"

    def discover(self, stream: RestStream | None = None) -> list[StreamInfo]:
        """Columns and types of the stream, inferred from its first page (an API has no catalogue to list,
        so a stream is required)."""
        if stream is None:
            raise ConnectorConfigError(
                "a rest connection cannot list its streams; discover a stream (declare a source that reads it)"
            )
        for batch in self._pages(stream, {"cursor": self._start_cursor(stream, None)}, limit_pages=1):
            batch_info = TypeTracker().from_records(batch)
            return [StreamInfo(name=stream.path, columns=dict(batch_info.types), detail=self.url(stream.path))]
        return [StreamInfo(name=stream.path, columns={}, detail="first page was empty")]

    def read(
        self,
        stream: RestStream,
        state: dict[str, Any] | None = None,
        window: tuple[dt.datetime, dt.datetime] | None = None,
        hints: TypeHints | None = None,
    ) -> Generator[Batch, None, None]:
        """Yield batches of up to `batch_size` records. With `incremental`, {cursor} in params/headers/body
        is the saved cursor, and the last batch carries the largest cursor seen as the new state."""
        cursor = self._start_cursor(stream, state)
        context: dict[str, Any] = {"cursor": cursor}
        if window is not None:
            context["window_start"], context["window_end"] = (w.isoformat() for w in window)
        cursor_path = parse_path(stream.incremental.cursor_path) if stream.incremental else None
        tracker = TypeTracker(hints=hints)
        newest = cursor
        pending: Page = []
        held: Batch | None = None
        # Pages are fetched one ahead in a thread: the next request is in flight while this batch is written.
        for page in prefetch(lambda: self._stream_pages(stream, context)):
            if cursor_path is not None:
                newest = later(newest, max((v for r in page if (v := find(r, cursor_path)) is not None), default=None))
            pending.extend(page)
            if len(pending) >= stream.batch_size:
                if held is not None:
                    yield held
                held, pending = tracker.from_records(pending, origin=self.url(stream.path)), []
        if pending:
            if held is not None:
                yield held
            held = tracker.from_records(pending, origin=self.url(stream.path))
        if held is not None:
            final = {"cursor": newest} if stream.incremental else None
            yield held.with_state(final)

    @staticmethod
    def _start_cursor(stream: RestStream, state: dict[str, Any] | None) -> Any:
        if stream.incremental is None:
            return None
        saved = (state or {}).get("cursor")
        return saved if saved is not None else stream.incremental.initial_value

    def _stream_pages(self, stream: RestStream, context: dict[str, Any]) -> Iterator[Page]:
        """Pages of the stream; for a child stream, the pages of every parent record's request in turn."""
        if stream.parent is None:
            yield from self._pages(stream, context)
            return
        fields = {column: parse_path(path) for column, path in stream.parent_fields.items()}
        for parent_page in self._stream_pages(stream.parent, {}):
            for parent in parent_page:
                child_context = {**context, "parent": parent}
                extra = {column: find(parent, path) for column, path in fields.items()}
                for page in self._pages(stream, child_context):
                    yield [{**extra, **record} for record in page] if extra else page

    def _pages(self, stream: RestStream, context: dict[str, Any], limit_pages: int | None = None) -> Iterator[Page]:
        url = self.url(render_path(stream.path, context))
        params = render(stream.params, context)
        headers = render(stream.headers, context)
        body = render(stream.json_body, context) if stream.json_body is not None else None
        records_path = parse_path(stream.records_path)
        paginator = paginator_for(stream.pagination, url, params)
        request: tuple[str, dict[str, Any]] | None = paginator.first()
        pages = 0
        while request is not None:
            page_url, page_params = request
            response = self.client.request(stream.method, page_url, params=page_params or None,
                                           headers=headers or None, json=body)
            document = self._json(response, page_url, page_params)
            records = self._records(document, records_path, stream.records_path, page_url, page_params)
            yield records
            pages += 1
            if limit_pages is not None and pages >= limit_pages:
                return
            request = paginator.next(response, document, records)

    def _json(self, response: requests.Response, url: str, params: dict[str, Any]) -> Any:
        try:
            return json.loads(response.content)
        except ValueError as exc:
            # Say what arrived, never its bytes: a body may echo the request's credentials or hold personal data.
            kind = response.headers.get("content-type") or "no content type"
            raise SourceReadError(
                f"{response.request.method or 'GET'} {self.client.display(url, params)}: response is not valid "
                f"JSON ({exc}); it is {len(response.content):,} bytes of {kind}"
            ) from exc

    def _records(self, document: Any, path: tuple[str | int, ...], shown: str, url: str, params: dict[str, Any]) -> Page:
        records = find(document, path)
        if records is None:
            return []
        if isinstance(records, dict):
            records = [records]
        if not isinstance(records, list) or not set(map(type, records)) <= {dict}:
            raise SourceReadError(
                f"GET {self.client.display(url, params)}: expected a list of objects at records_path {shown!r}, "
                f"found {type(records).__name__}"
            )
        return records

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        if self._client is not None:
            self._client.session.close()
            self._client = None


__all__ = ["ConnectorError", "RestApiResource"]
