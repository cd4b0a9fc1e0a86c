"""Paginators: given the response to one page, where the next page is (or that there is none).

Each paginator follows the same small protocol: `first(params)` sets the first page's parameters, and
`next(response, body, records)` returns the next page's (url, params) or None."""

from __future__ import annotations

from typing import Any
from urllib.parse import urljoin, urlsplit

import requests

from connectors.errors import SourceReadError
from connectors.jsonpath import find, parse_path
from connectors.redact import sanitize_url
from connectors.rest.config import (
    CursorPagination,
    LinkHeaderPagination,
    NextUrlPagination,
    NoPagination,
    OffsetPagination,
    PageNumberPagination,
    Pagination,
)

Next = tuple[str, dict[str, Any]] | None


class Paginator:
    def __init__(self, config: Pagination, url: str, params: dict[str, Any]) -> None:
        self.config = config
        self.url = url
        self.params = dict(params)
        self.pages = 0
        self.records = 0  # records read so far
        self.largest = 0  # the largest page so far
        self.has_more = parse_path(config.has_more_path) if config.has_more_path else None

    def first(self) -> tuple[str, dict[str, Any]]:
        return self.url, self.params

    def next(self, response: requests.Response, body: Any, records: list[Any]) -> Next:
        """The next request, after the shared stop conditions (max pages, empty page, has_more)."""
        self.pages += 1
        config = self.config
        if config.max_pages is not None and self.pages >= config.max_pages:
            return None
        if config.stop_on_empty_page and not records:
            return None
        if self.has_more is not None and not find(body, self.has_more, default=False):
            return None
        self.records += len(records)
        # A page shorter than an earlier one is the last: the API had no more to fill it with. (The first
        # page proves nothing: the API may cap the page size below what was asked.)
        short = 0 < len(records) < self.largest
        self.largest = max(self.largest, len(records))
        if short and getattr(config, "stop_on_short_page", False):
            return None
        total_path = getattr(config, "total_path", None)
        if total_path:
            total = find(body, parse_path(total_path))
            if total is not None and self.records >= int(total):
                return None
        return self._next(response, body, records)

    def _next(self, response: requests.Response, body: Any, records: list[Any]) -> Next:
        return None

    def _same_origin(self, url: str) -> str:
        # A next-page URL from the response must not send our credentials to another host.
        absolute = urljoin(self.url, url)
        if urlsplit(absolute)[:2] != urlsplit(self.url)[:2]:
            raise SourceReadError(
                f"next page URL {sanitize_url(absolute)} leaves {sanitize_url(self.url)}'s origin; refusing to "
                "follow it with this connection's credentials"
            )
        return absolute


class PageNumberPaginator(Paginator):
    config: PageNumberPagination

    def first(self) -> tuple[str, dict[str, Any]]:
        self.page = self.config.start_page
        self.params[self.config.page_param] = self.page
        if self.config.page_size_param and self.config.page_size:
            self.params[self.config.page_size_param] = self.config.page_size
        return self.url, self.params

    def _next(self, response: requests.Response, body: Any, records: list[Any]) -> Next:
        if self.config.total_pages_path:
            total = find(body, parse_path(self.config.total_pages_path))
            last = (int(total) - 1 + self.config.start_page) if total is not None else None
            if last is not None and self.page >= last:
                return None
        self.page += 1
        self.params[self.config.page_param] = self.page
        return self.url, self.params


class OffsetPaginator(Paginator):
    config: OffsetPagination

    def first(self) -> tuple[str, dict[str, Any]]:
        self.offset = 0
        self.params.update({self.config.offset_param: 0, self.config.limit_param: self.config.limit})
        return self.url, self.params

    def _next(self, response: requests.Response, body: Any, records: list[Any]) -> Next:
        self.offset += self.config.limit
        self.params[self.config.offset_param] = self.offset
        return self.url, self.params


class CursorPaginator(Paginator):
    config: CursorPagination

    def _next(self, response: requests.Response, body: Any, records: list[Any]) -> Next:
        token = find(body, parse_path(self.config.cursor_path))
        if token in (None, ""):
            return None
        self.params[self.config.cursor_param] = token
        return self.url, self.params


class NextUrlPaginator(Paginator):
    config: NextUrlPagination

    def _next(self, response: requests.Response, body: Any, records: list[Any]) -> Next:
        url = find(body, parse_path(self.config.next_url_path))
        if not url:
            return None
        # The next URL already carries every query parameter the API wants.
        return self._same_origin(str(url)), {}


class LinkHeaderPaginator(Paginator):
    config: LinkHeaderPagination

    def _next(self, response: requests.Response, body: Any, records: list[Any]) -> Next:
        link = response.links.get(self.config.rel)
        if not link or not link.get("url"):
            return None
        return self._same_origin(link["url"]), {}


_PAGINATORS: dict[type, type[Paginator]] = {
    NoPagination: Paginator,
    PageNumberPagination: PageNumberPaginator,
    OffsetPagination: OffsetPaginator,
    CursorPagination: CursorPaginator,
    NextUrlPagination: NextUrlPaginator,
    LinkHeaderPagination: LinkHeaderPaginator,
}


def paginator_for(config: Pagination, url: str, params: dict[str, Any]) -> Paginator:
    return _PAGINATORS[type(config)](config, url, params)
