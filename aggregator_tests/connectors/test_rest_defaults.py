"""What a REST connection does with its defaults (issue 10, items 4 and 7): no fixed request budget but
back-off when the API asks for it, and no wasted request at the end of a page-number stream."""

from __future__ import annotations

from typing import Any

from aggregator_tests.testapi import LocalApi, make_item
from connectors.rest import RestApiResource, RestStream


def _read(api: LocalApi, stream: dict[str, Any], **config: Any) -> list[dict[str, Any]]:
    resource = RestApiResource(base_url=api.url, **config)
    return [dict(zip(b.columns, row)) for b in resource.read(RestStream.model_validate(stream)) for row in b.rows]


def _page_number(**pagination: Any) -> dict[str, Any]:
    return {"path": "/items/page_number", "records_path": "data",
            "pagination": {"type": "page_number", "page_size": 10, **pagination}}


def test_page_number_stops_on_the_short_last_page(api: LocalApi) -> None:
    """The reported case: a page-number stream always asked for one more (empty) page. 25 records in pages
    of 10 are now 3 requests, not 4."""
    assert len(_read(api, _page_number())) == 25
    assert api.state.hits["/items/page_number"] == 3


def test_page_number_total_path_counts_records(api: LocalApi) -> None:
    """With `total_path` (a record count) even a stream of full pages ends without an empty request."""
    api.state.items = [make_item(i) for i in range(1, 31)]
    assert len(_read(api, _page_number(total_path="total"))) == 30
    assert api.state.hits["/items/page_number"] == 3


def test_a_capped_page_size_is_not_taken_for_the_last_page(api: LocalApi) -> None:
    """An API that returns fewer records than asked on every page (a server-side cap) is read to the end:
    only a page shorter than an earlier one ends the stream."""
    api.state.max_page_size = 4
    assert [r["id"] for r in _read(api, _page_number())] == list(range(1, 26))
    assert api.state.hits["/items/page_number"] == 7  # 4 × 6 full pages, then a page of 1


def test_short_page_stop_can_be_switched_off(api: LocalApi) -> None:
    assert len(_read(api, _page_number(stop_on_short_page=False))) == 25
    assert api.state.hits["/items/page_number"] == 4


def test_no_fixed_request_budget_by_default() -> None:
    """The default was 10 requests/s whatever the API could take; it is now none (adaptive), and a fixed
    budget stays available as an option."""
    assert RestApiResource(base_url="http://127.0.0.1:9").requests_per_second is None
    assert RestApiResource(base_url="http://127.0.0.1:9", requests_per_second=5).client.limiter.interval == 0.2


def test_retry_after_on_503_is_honoured(api: LocalApi) -> None:
    """A 503 with Retry-After: 1 is retried once the API said it may be, not before."""
    assert len(_read(api, {"path": "/unavailable", "records_path": "data"})) == 3
    first, second = api.state.times["/unavailable"]
    assert api.state.hits["/unavailable"] == 2
    assert second - first >= 0.95  # a lower bound the client guarantees by sleeping, measured by the server


def test_throttling_slows_every_later_request_down(api: LocalApi) -> None:
    """An API that answers 429 to requests closer than 150 ms apart (10 requests/s, the old default budget, is
    too fast for it): the client widens its spacing after a 429 instead of retrying each page into another
    429, so most pages succeed on their first request."""
    api.state.items = [make_item(i) for i in range(1, 41)]
    stream = {"path": "/throttled", "records_path": "data",
              "pagination": {"type": "page_number", "page_size_param": None}}
    assert len(_read(api, stream)) == 40
    pages = api.state.hits["/throttled"] - api.state.hits["429"]
    assert pages == 21  # 20 full pages and the empty one that ends the stream
    assert api.state.hits["429"] <= pages // 3, api.state.hits["429"]
