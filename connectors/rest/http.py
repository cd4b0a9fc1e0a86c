"""One HTTP request done properly: adaptive spacing (plus an optional fixed budget), retries with backoff and
jitter on connection errors, timeouts, bodies cut off mid-way and 5xx, `Retry-After` on 429 and 503, and a final error that names the
sanitized URL, status and attempts."""

from __future__ import annotations

import email.utils
import logging
import random
import threading
import time
from dataclasses import dataclass
from typing import Any

import requests

from connectors.errors import AuthError, HttpRequestError
from connectors.redact import sanitize_url
from connectors.rest.auth import Authenticator
from connectors.rest.egress_adapter import guard

log = logging.getLogger(__name__)


class RateLimiter:
    """Spaces request starts, shared by every thread using the resource: an optional fixed budget
    (`per_second`), and an adaptive spacing that the API's own signals set.

    There is no fixed budget by default: requests go as fast as the API answers. A 429 or 503 doubles the
    spacing (from 50 ms) and, with `Retry-After`, pauses every request until then; each success shrinks the
    spacing by 5 %, so a client settles just under the rate the API accepts instead of guessing one."""

    MIN_SPACING = 0.05
    MAX_SPACING = 10.0

    def __init__(self, per_second: float | None) -> None:
        self.interval = 1.0 / per_second if per_second else 0.0
        self.spacing = 0.0  # adaptive, from the API's throttling signals
        self._next = 0.0
        self._lock = threading.Lock()

    def wait(self) -> None:
        with self._lock:
            gap = max(self.interval, self.spacing)
            if not gap and self._next == 0.0:
                return
            now = time.monotonic()
            start = max(now, self._next)
            self._next = start + gap
        if start > now:
            time.sleep(start - now)

    def throttled(self, pause: float | None) -> None:
        """The API said slow down (429/503): widen the spacing; `pause` seconds (Retry-After) for everyone."""
        with self._lock:
            self.spacing = min(self.MAX_SPACING, max(self.MIN_SPACING, self.spacing * 2))
            if pause:
                self._next = max(self._next, time.monotonic() + pause)

    def succeeded(self) -> None:
        if self.spacing:
            with self._lock:
                self.spacing = 0.0 if self.spacing < self.MIN_SPACING / 4 else self.spacing * 0.95


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int
    backoff_seconds: float
    backoff_max_seconds: float
    max_retry_after_seconds: float

    def backoff(self, attempt: int) -> float:
        # Exponential with full jitter, so many clients retrying together spread out.
        ceiling = min(self.backoff_max_seconds, self.backoff_seconds * 2 ** (attempt - 1))
        return random.uniform(ceiling / 2, ceiling)  # noqa: S311 (retry jitter, not cryptography)


def retry_after(response: requests.Response) -> float | None:
    """Seconds to wait from a `Retry-After` header (delta-seconds or an HTTP date), if any."""
    value = response.headers.get("Retry-After")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        parsed = email.utils.parsedate_to_datetime(value) if value else None
        return max(0.0, parsed.timestamp() - time.time()) if parsed else None


class HttpClient:
    def __init__(
        self, authenticator: Authenticator, limiter: RateLimiter, retry: RetryPolicy, timeout: float, verify: bool
    ) -> None:
        self.authenticator = authenticator
        self.session = guard(authenticator.session())
        self.limiter = limiter
        self.retry = retry
        self.timeout = timeout
        self.verify = verify

    def display(self, url: str, params: dict[str, Any] | None) -> str:
        # Prepared through the session, so session-level params (an API key in the query) are shown masked.
        prepared = self.session.prepare_request(requests.Request("GET", url, params=params)).url or url
        return sanitize_url(prepared, self.authenticator.secret_params)

    def request(
        self, method: str, url: str, *, params: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None, json: Any = None,
    ) -> requests.Response:
        """The successful (2xx/3xx) response, or HttpRequestError after the retry policy gives up."""
        attempt = 0
        renewed = False
        while True:
            attempt += 1
            self.authenticator.ensure_token(self.session)
            self.limiter.wait()
            status: int | None = None
            try:
                response = self.session.request(
                    method, url, params=params, headers=headers, json=json, timeout=self.timeout, verify=self.verify
                )
            except (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError) as exc:
                # ChunkedEncodingError: the body was cut off mid-way (a chunked stream or a short Content-Length:
                # urllib3's IncompleteRead), as transient as a dropped connection.
                problem = f"{type(exc).__name__} (response cut off)" if isinstance(
                    exc, requests.exceptions.ChunkedEncodingError) else type(exc).__name__
                wait = self.retry.backoff(attempt)
            else:
                status = response.status_code
                if status < 400:
                    self.limiter.succeeded()
                    return response
                problem = f"HTTP {status} {response.reason}"
                if status == 401 and self.authenticator.renewable and not renewed:
                    # The token may have been revoked early: fetch a new one once, then retry right away.
                    renewed = True
                    self.authenticator.ensure_token(self.session, force=True)
                    attempt -= 1
                    continue
                if status in (429, 503):
                    # The API is throttling or briefly unavailable: slow every request down, not just this one.
                    asked = retry_after(response)
                    wait = asked if asked is not None else self.retry.backoff(attempt)
                    if wait > self.retry.max_retry_after_seconds:
                        raise self._error(method, url, params, status, attempt,
                                          f"{problem}: Retry-After {wait:.0f}s exceeds max_retry_after_seconds")
                    self.limiter.throttled(asked)
                    if asked is not None:
                        wait = 0.0  # the limiter holds every request (this one too) until Retry-After
                elif status < 500:
                    detail = response.text[:200].strip()
                    cls = AuthError if status in (401, 403) else HttpRequestError
                    raise self._error(method, url, params, status, attempt, f"{problem}: {detail}", cls)
                else:
                    wait = self.retry.backoff(attempt)
            if attempt >= self.retry.max_attempts:
                raise self._error(method, url, params, status, attempt, problem)
            log.warning("%s %s: %s; retry %d in %.1fs", method, self.display(url, params), problem, attempt, wait)
            time.sleep(wait)

    def _error(
        self, method: str, url: str, params: dict[str, Any] | None, status: int | None, attempts: int,
        problem: str, cls: type[HttpRequestError] = HttpRequestError,
    ) -> HttpRequestError:
        shown = self.display(url, params)
        noun = "attempt" if attempts == 1 else "attempts"
        return cls(f"{method} {shown} failed after {attempts} {noun}: {problem}", url=shown, status=status,
                   attempts=attempts)
