"""What a REST stream reads: path, params, where the records are, how to page, how to be incremental."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from connectors.jsonpath import parse_path
from connectors.nested import NestedData
from connectors.rest.templates import check_templates


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _Stops(_Strict):
    """Stop conditions every paginator shares (any one ends the stream)."""

    max_pages: int | None = Field(None, gt=0, description="Stop after this many pages.")
    stop_on_empty_page: bool = Field(True, description="Stop at the first page with no records.")
    has_more_path: str | None = Field(
        None, description="JSON path of a boolean in the body; stop when it is false (e.g. 'has_more')."
    )


class NoPagination(_Stops):
    type: Literal["none"] = Field("none", description="One request, one page.")


class PageNumberPagination(_Stops):
    type: Literal["page_number"] = Field("page_number", description="?page=1, 2, 3 …")
    page_param: str = Field("page", description="Query parameter carrying the page number.")
    start_page: int = Field(1, ge=0, description="Number of the first page.")
    page_size_param: str | None = Field("per_page", description="Query parameter for the page size (None: not sent).")
    page_size: int | None = Field(100, gt=0, description="Page size sent in `page_size_param`.")
    total_pages_path: str | None = Field(None, description="JSON path of the total page count, to stop after the last.")
    total_path: str | None = Field(
        None, description="JSON path of the total record count, to stop once that many records were read."
    )
    stop_on_short_page: bool = Field(
        True,
        description="Stop after a page with fewer records than an earlier page (the last page), saving the "
        "request that would return an empty page. Turn off for APIs whose pages shrink mid-stream (e.g. "
        "filtering after paging).",
    )


class OffsetPagination(_Stops):
    type: Literal["offset"] = Field("offset", description="?offset=0&limit=100, then offset=100 …")
    offset_param: str = Field("offset", description="Query parameter carrying the offset.")
    limit_param: str = Field("limit", description="Query parameter carrying the page size.")
    limit: int = Field(100, gt=0, description="Page size sent as `limit_param`.")
    total_path: str | None = Field(None, description="JSON path of the total record count, to stop after the last.")
    stop_on_short_page: bool = Field(
        True,
        description="Stop after a page with fewer records than an earlier page (the last page). Turn off for "
        "APIs whose pages shrink mid-stream.",
    )


class CursorPagination(_Stops):
    type: Literal["cursor"] = Field("cursor", description="A token in each body is sent back as a query parameter.")
    cursor_path: str = Field("next_cursor", description="JSON path of the next-page token in the body.")
    cursor_param: str = Field("cursor", description="Query parameter the token is sent in.")


class NextUrlPagination(_Stops):
    type: Literal["next_url"] = Field("next_url", description="The body holds the URL of the next page.")
    next_url_path: str = Field("next", description="JSON path of the next page's URL (absolute or relative).")


class LinkHeaderPagination(_Stops):
    type: Literal["link_header"] = Field("link_header", description="RFC 8288 `Link: <…>; rel=\"next\"` headers.")
    rel: str = Field("next", description="Link relation of the next page.")


Pagination = Annotated[
    NoPagination | PageNumberPagination | OffsetPagination | CursorPagination | NextUrlPagination
    | LinkHeaderPagination,
    Field(discriminator="type"),
]


class Incremental(_Strict):
    """Read only what changed since the last successful load: the cursor is the largest value seen."""

    cursor_path: str = Field(description="JSON path of the cursor in each record, e.g. 'updated_at'.")
    initial_value: str | int | float | None = Field(
        None, description="Cursor for the very first load; with None, params using {cursor} are left out."
    )


class RestStream(_Strict):
    """One stream of records from an HTTP JSON API of the connection's `base_url`."""

    type: Literal["rest"] = "rest"
    path: str = Field(description="Path below base_url; may use {parent.<field>} for child streams.")
    method: Literal["GET", "POST"] = Field("GET", description="HTTP method.")
    params: dict[str, Any] = Field(
        default_factory=dict,
        description="Query parameters; strings may use {cursor}, {window_start}, {window_end}, {parent.<field>}.",
    )
    headers: dict[str, str] = Field(default_factory=dict, description="Extra request headers (templated like params).")
    json_body: dict[str, Any] | None = Field(None, description="JSON body for POST (templated like params).")
    records_path: str = Field("$", description="JSON path of the list of records in each response, e.g. '$.data'.")
    pagination: Pagination = Field(default_factory=lambda: NoPagination.model_validate({}), description="How to get from one page to the next.")
    incremental: Incremental | None = Field(None, description="Cursor-based incremental loading.")
    parent: RestStream | None = Field(
        None, description="Read this stream once per record of the parent stream (e.g. /users/{parent.id}/orders)."
    )
    parent_fields: dict[str, str] = Field(
        default_factory=dict, description="Columns added to each child record from its parent: {column: parent JSON path}."
    )
    batch_size: int = Field(5000, gt=0, description="Records per batch handed to the destination (pages are combined).")
    nested: NestedData | None = Field(
        None,
        description="Unpack nested JSON: objects into `parent__child` columns, arrays into child tables "
        "`<table>__<field>` (docs/connectors/nested.md). Unset: each nested value is one JSON text column.",
    )

    @model_validator(mode="after")
    def _check(self) -> RestStream:
        parse_path(self.records_path)
        if self.incremental is not None:
            parse_path(self.incremental.cursor_path)
        for path in self.parent_fields.values():
            parse_path(path)
        check_templates(
            {"path": self.path, "params": self.params, "headers": self.headers, "json_body": self.json_body},
            allow_parent=self.parent is not None,
        )
        if self.parent_fields and self.parent is None:
            raise ValueError("parent_fields needs a parent stream")
        return self
