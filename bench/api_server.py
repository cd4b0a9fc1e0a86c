"""The benchmark's local paginated JSON API: N generated records of 8 mixed-type fields.

Run as `python bench/api_server.py PORT RECORDS`. `GET /records?offset=&limit=[&since=ID]` returns
{"data": [...], "total": n}; records are generated per request (no dataset held in memory), and `since`
filters to ids above it, the way an incremental API would."""

from __future__ import annotations

import datetime as dt
import json
import sys

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

BASE = dt.datetime(2024, 1, 1)
CATEGORIES = ("alpha", "beta", "gamma", "delta", "epsilon")


def record(i: int) -> dict[str, object]:
    return {
        "id": i,
        "sku": f"SKU-{i:08d}",
        "name": f"product {i % 9973} variant {i % 7}",
        "price": round((i % 10_000) * 0.37 + 0.99, 2),
        "quantity": i % 250,
        "active": i % 3 != 0,
        "created_at": (BASE + dt.timedelta(seconds=i * 17)).isoformat(),
        "category": CATEGORIES[i % 5] if i % 11 else None,
    }


def record_json(i: int) -> str:
    """`json.dumps(record(i))` without building the dict: the server must not be the bottleneck it measures."""
    category = f'"{CATEGORIES[i % 5]}"' if i % 11 else "null"
    created = (BASE + dt.timedelta(seconds=i * 17)).isoformat()
    return (
        f'{{"id":{i},"sku":"SKU-{i:08d}","name":"product {i % 9973} variant {i % 7}",'
        f'"price":{round((i % 10_000) * 0.37 + 0.99, 2)},"quantity":{i % 250},'
        f'"active":{"true" if i % 3 != 0 else "false"},"created_at":"{created}","category":{category}}}'
    )


def build(total: int) -> Starlette:
    async def records(request: Request) -> Response:
        offset = int(request.query_params.get("offset", 0))
        limit = min(int(request.query_params.get("limit", 1000)), 5000)
        since = int(request.query_params.get("since", 0))
        # ids are 1..total; with `since`, the visible ids are since+1..total
        start = since + 1 + offset
        end = min(total + 1, start + limit)
        data = ",".join(record_json(i) for i in range(start, end))
        return Response(f'{{"data":[{data}],"total":{max(0, total - since)}}}', media_type="application/json")

    async def nested(request: Request) -> Response:
        offset = int(request.query_params.get("offset", 0))
        limit = min(int(request.query_params.get("limit", 1000)), 5000)
        data = [nested_record(i) for i in range(offset + 1, min(total + 1, offset + 1 + limit))]
        return Response(json.dumps({"data": data, "total": total}, separators=(",", ":")),
                        media_type="application/json")

    return Starlette(routes=[Route("/records", records), Route("/nested", nested)])


def nested_record(i: int) -> dict[str, object]:
    """An order as APIs send it: nested objects (customer, address) and arrays (1-3 items, each with tags)."""
    return {
        "id": i,
        "status": ("open", "paid", "shipped")[i % 3],
        "customer": {"id": i % 5000, "name": f"customer {i % 5000}",
                     "address": {"city": CATEGORIES[i % 5], "zip": f"{i % 90000:05d}"}},
        "items": [{"sku": f"SKU-{(i + k) % 9973:05d}", "quantity": k + 1, "price": round((i % 997) * 0.37 + k, 2),
                   "tags": list(CATEGORIES[: (i + k) % 3 + 1])} for k in range(i % 3 + 1)],
        "created_at": (BASE + dt.timedelta(seconds=i * 17)).isoformat(),
    }


if __name__ == "__main__":
    port, total = int(sys.argv[1]), int(sys.argv[2])
    uvicorn.run(build(total), host="127.0.0.1", port=port, log_level="warning", access_log=False)


def _same(i: int) -> bool:
    import json

    return json.loads(record_json(i)) == record(i)  # the fast path is checked against the plain one


if not all(_same(i) for i in (1, 11, 33, 10_000, 123_457)):
    raise RuntimeError("record_json() disagrees with record(): the benchmark API would serve wrong data")
