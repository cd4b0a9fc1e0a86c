"""One shape for every refusal the proxy answers itself (400, 401, 403, 413, 429, 503).

The body carries both a machine-readable part (`error`, `detail`, `missing_permission`) and a GraphQL
`errors` entry: GraphQL clients (Dagster's `DagsterGraphQLClient`, gql, the UI) surface `errors[0].message`,
so the reason reaches the person who sent the request instead of a bare "403 Forbidden".
"""

from __future__ import annotations

from starlette.responses import JSONResponse

BEARER_REALM = 'Bearer realm="aggregator", charset="UTF-8"'

ERROR_NAMES = {400: "bad_request", 401: "unauthenticated", 403: "forbidden", 404: "not_found",
               413: "too_large", 429: "rate_limited", 502: "bad_gateway", 503: "busy"}


def refusal_body(status: int, detail: str, missing: str | None = None) -> dict[str, object]:
    error = ERROR_NAMES.get(status, "refused")
    message = f"{error}: {detail}" + (f" (missing permission: {missing})" if missing else "")
    body: dict[str, object] = {"error": error, "detail": detail,
                               "errors": [{"message": message, "extensions": {"code": error.upper()}}]}
    if missing is not None:
        body["missing_permission"] = missing
    return body


def refusal(status: int, detail: str, missing: str | None = None, retry_after: float | None = None) -> JSONResponse:
    headers = {"cache-control": "no-store"}
    if status == 401:
        headers["www-authenticate"] = BEARER_REALM
    if retry_after is not None:
        headers["retry-after"] = str(max(1, int(retry_after + 0.999)))
    return JSONResponse(refusal_body(status, detail, missing), status_code=status, headers=headers)
