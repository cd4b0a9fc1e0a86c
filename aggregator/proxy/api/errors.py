"""The API's one error shape: the proxy's refusal body (refusals.py) plus located spec problems."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field
from starlette.responses import JSONResponse

from aggregator.proxy.refusals import BEARER_REALM, ERROR_NAMES, refusal_body

# The proxy's own names, plus the statuses only the API answers.
API_ERROR_NAMES = {**ERROR_NAMES, 405: "method_not_allowed", 409: "conflict", 412: "precondition_failed",
                   415: "unsupported_media_type", 422: "invalid", 428: "precondition_required",
                   500: "internal_error", 504: "timeout", 507: "insufficient_storage"}


class Problem(BaseModel):
    """One problem in a spec, as `aggregator validate` prints it: `file:line: field: message`."""

    file: str = Field(description="Spec file, relative to the specs directory.")
    line: int | None = Field(description="Line in that file, when known.")
    field: str = Field(description="Dotted field path, e.g. `pipelines.0.sources.1.stream`.")
    message: str = Field(description="What is wrong and what is allowed.")
    text: str = Field(description="The whole line as `aggregator validate` prints it.")


class ErrorBody(BaseModel):
    """Every error the API answers has this shape (the proxy's refusals too)."""

    error: str = Field(description="Machine-readable name: forbidden, not_found, invalid, precondition_failed, ...")
    detail: str = Field(description="What went wrong and what is allowed.")
    errors: list[dict[str, Any]] = Field(description="The same message as a GraphQL-style error list.")
    missing_permission: str | None = Field(None, description="For 403: the permission that is missing.")
    problems: list[Problem] | None = Field(None, description="For an invalid spec: every problem found.")


class ApiError(Exception):
    """Raised by a handler; answered in the one error shape."""

    def __init__(self, status: int, detail: str, missing: str | None = None,
                 problems: list[Problem] | None = None, retry_after: float | None = None) -> None:
        super().__init__(detail)
        self.status, self.detail, self.missing, self.problems = status, detail, missing, problems
        # 503 and 429 say when to come back; without a value a 503 suggests 10 s (e.g. a code location restarting).
        self.retry_after = retry_after if retry_after is not None else (10.0 if status == 503 else None)

    def response(self) -> JSONResponse:
        body = refusal_body(self.status, self.detail, self.missing)
        name = API_ERROR_NAMES.get(self.status, "refused")
        body["error"] = name
        body["errors"] = [{"message": f"{name}: {self.detail}", "extensions": {"code": name.upper()}}]
        if self.problems is not None:
            body["problems"] = [p.model_dump() for p in self.problems]
        headers = {"cache-control": "no-store"}
        if self.status == 401:
            headers["www-authenticate"] = BEARER_REALM
        if self.retry_after is not None:
            headers["retry-after"] = str(max(1, int(self.retry_after + 0.999)))
        return JSONResponse(body, status_code=self.status, headers=headers)
