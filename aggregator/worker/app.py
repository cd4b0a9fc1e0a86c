"""The worker's HTTP face: `POST /v1/<action>` with `Authorization: Bearer <AGGREGATOR_WORKER_TOKEN>`.

Pure ASGI on Starlette; each call runs in a sandboxed child process (sandbox.py) on a thread, so a slow call
never blocks another's answer. `GET /health` answers without a token and says nothing but "ok".
"""

from __future__ import annotations

import hmac
import json
import logging
import os
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager

import anyio
from pydantic import BaseModel, ConfigDict, Field, SecretStr
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from aggregator.worker.actions import ACTIONS
from aggregator.worker.sandbox import CallLimits, run_call, warm_up

log = logging.getLogger(__name__)

TOKEN_ENV = "AGGREGATOR_WORKER_TOKEN"  # noqa: S105 (a variable name, not a secret)
# Accepted besides the token while it is rotated: the worker rolls first with both, then the proxy with the new
# one, and no call in between is refused (docs/deploy.md, "Rotate secrets").
PREVIOUS_TOKEN_ENV = "AGGREGATOR_WORKER_TOKEN_PREVIOUS"  # noqa: S105 (a variable name, not a secret)
MAX_BODY = 1 << 20


class WorkerSettings(BaseModel):
    """The worker's configuration, from its environment."""

    model_config = ConfigDict(frozen=True)

    token: SecretStr = Field(description="AGGREGATOR_WORKER_TOKEN: the bearer token the proxy sends.")
    previous_token: SecretStr | None = Field(
        None, description="AGGREGATOR_WORKER_TOKEN_PREVIOUS: also accepted, only while the token is rotated.")
    call_timeout_s: float = Field(60.0, gt=0, description="AGGREGATOR_WORKER_CALL_TIMEOUT_S: deadline per call.")
    call_memory_mb: int = Field(
        1024, gt=0, description="AGGREGATOR_WORKER_CALL_MEMORY_MB: address space a call may add (RLIMIT_AS).")
    concurrency: int = Field(4, gt=0, description="AGGREGATOR_WORKER_CONCURRENCY: calls running at once.")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> WorkerSettings:
        env = os.environ if environ is None else environ
        token = env.get(TOKEN_ENV, "")
        if len(token) < 16:
            raise ValueError(f"{TOKEN_ENV} must be set to a random value of at least 16 characters "
                             "(the proxy sends it as a bearer token)")
        values: dict[str, object] = {"token": token}
        previous = env.get(PREVIOUS_TOKEN_ENV, "")
        if previous:
            if len(previous) < 16:
                raise ValueError(f"{PREVIOUS_TOKEN_ENV} must be the previous token (at least 16 characters) or unset")
            values["previous_token"] = previous
        for name, key in (("call_timeout_s", "AGGREGATOR_WORKER_CALL_TIMEOUT_S"),
                          ("call_memory_mb", "AGGREGATOR_WORKER_CALL_MEMORY_MB"),
                          ("concurrency", "AGGREGATOR_WORKER_CONCURRENCY")):
            if env.get(key):
                values[name] = env[key]
        return cls.model_validate(values)


def _error(status: int, detail: str) -> JSONResponse:
    return JSONResponse({"detail": detail}, status_code=status)


def build_app(settings: WorkerSettings) -> Starlette:
    limits = CallLimits(settings.call_timeout_s, settings.call_memory_mb)
    limiter = anyio.CapacityLimiter(settings.concurrency)
    accepted = [f"Bearer {token.get_secret_value()}".encode()
                for token in (settings.token, settings.previous_token) if token is not None]

    async def health(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def call(request: Request) -> Response:
        given = request.headers.get("authorization", "").encode()
        # Every accepted token is compared (no early exit): the time taken says nothing about which one matched.
        if not [expected for expected in accepted if hmac.compare_digest(given, expected)]:
            return _error(401, "a valid worker token is required (Authorization: Bearer …)")
        name = request.path_params["action"]
        if name not in ACTIONS:
            return _error(404, f"no action {name!r}; actions: {', '.join(ACTIONS)}")
        body = await request.body()
        if len(body) > MAX_BODY:
            return _error(413, "request body too large")
        try:
            payload = json.loads(body or b"{}")
        except ValueError:
            return _error(400, "the body must be a JSON object")
        if not isinstance(payload, dict):
            return _error(400, "the body must be a JSON object")
        started = time.monotonic()
        result = await anyio.to_thread.run_sync(run_call, name, payload, limits, limiter=limiter)
        # Names only (connection, pipeline, asset): what was asked, never what was answered.
        log.info("worker call action=%s target=%s status=%d duration_ms=%.0f", name,
                 "/".join(str(payload.get(k)) for k in ("connection", "pipeline", "source", "transform", "channel")
                          if isinstance(payload.get(k), str)), result.status, (time.monotonic() - started) * 1000)
        return JSONResponse(result.body, status_code=result.status)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await anyio.to_thread.run_sync(warm_up)
        yield

    return Starlette(routes=[Route("/health", health), Route("/v1/{action}", call, methods=["POST"])],
                     lifespan=lifespan)


def serve(host: str, port: int) -> None:
    """Run the worker until interrupted. The token is read, then removed from this process's environment,
    so no call's child process inherits it."""
    import uvicorn

    settings = WorkerSettings.from_env()
    os.environ.pop(TOKEN_ENV, None)
    os.environ.pop(PREVIOUS_TOKEN_ENV, None)
    # glibc gives each thread a 64 MB malloc arena; under RLIMIT_AS that address space would count against
    # every call's cap. Set before the fork server starts, which reads it at start-up.
    os.environ.setdefault("MALLOC_ARENA_MAX", "2")
    uvicorn.run(build_app(settings), host=host, port=port, log_level="warning", server_header=False,
                date_header=False)
