"""The proxy's side of the worker: the only way the API checks, discovers or previews anything.

The proxy never resolves a secret or opens a connector (docs/security.md, "The trust boundary"): it names
what to act on and forwards the worker's answer. Without a worker (`AGGREGATOR_WORKER_URL` unset, or not
answering) those routes answer 503 saying so.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from aggregator.proxy.api.errors import ApiError

URL_ENV, TOKEN_ENV = "AGGREGATOR_WORKER_URL", "AGGREGATOR_WORKER_TOKEN"
# Statuses the worker answers with a detail the caller may read (already redacted there); anything else is
# reported as the worker failing, without its body.
PASSED_ON = frozenset({400, 404, 409, 503, 504, 507})
# What a route that asks the worker may answer besides its own statuses (for OpenAPI).
WORKER_STATUSES = (409, 502, 503, 504, 507)


@dataclass(frozen=True)
class WorkerClient:
    url: str | None
    token: str | None
    timeout_s: float = 120.0

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> WorkerClient:
        env = os.environ if environ is None else environ
        timeout = float(env.get("AGGREGATOR_WORKER_CALL_TIMEOUT_S") or 60) + 30  # the worker's deadline answers first
        return cls(env.get(URL_ENV) or None, env.get(TOKEN_ENV) or None, timeout)

    async def call(self, action: str, payload: dict[str, Any]) -> Any:
        """The worker's answer to `action`, or ApiError with the worker's status and detail."""
        if not self.url or not self.token:
            raise ApiError(503, f"no worker is configured ({URL_ENV} and {TOKEN_ENV}): checks, discovery, "
                           "previews and alert channel tests run only in the worker, never in the proxy")
        try:
            async with httpx.AsyncClient(timeout=self.timeout_s) as client:
                response = await client.post(f"{self.url.rstrip('/')}/v1/{action}", json=payload,
                                             headers={"Authorization": f"Bearer {self.token}"})
        except httpx.HTTPError as exc:
            raise ApiError(503, f"the worker at {URL_ENV} did not answer ({type(exc).__name__})") from None
        if response.status_code == 200:
            return response.json()
        detail = None
        if response.status_code in PASSED_ON:
            try:
                detail = str(response.json().get("detail"))
            except (ValueError, AttributeError):
                detail = None
        if detail is None:
            raise ApiError(502, f"the worker failed the call (HTTP {response.status_code}); its log has the details")
        raise ApiError(response.status_code, detail)
