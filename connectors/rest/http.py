"""One HTTP request done properly: a request budget, retries with backoff and jitter on connection errors,
timeouts and 5xx, `Retry-After` on 429, and a final error that names the sanitized URL, status and attempts."""

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

log = logging.getLogger(__name__)


class RateLimiter:
    """At most `per_second` request starts per second, shared by every thread using the resource."""

    def __init__(self, per_second: float | None) -> None:
        self.interval = 1.0 / per_second if per_second else 0.0
        self._next = 0.0
        self._lock = threading.Lock()

    def wait(self) -> None:
        if not self.interval:
            return
        with self._lock:
            now = time.monotonic()
            start = max(now, self._next)
            self._next = start + self.interval
        if start > now:
            time.sleep(start - now)


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int
    backoff_seconds: float
    backoff_max_seconds: float
    max_retry_after_seconds: float

    def backoff(self, attempt: int) -> float:
        # Exponential with full jitter, so many clients retrying together spread out.
        ceiling = min(self.backoff_max_seconds, self.backoff_seconds * 2 ** (attempt - 1))
        return random.uniform(ceiling / 2, ceiling)


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
        self.session = authenticator.session()
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
            except (requests.ConnectionError, requests.Timeout) as exc:
                problem = f"{type(exc).__name__}"
                wait = self.retry.backoff(attempt)
            else:
                status = response.status_code
                if status < 400:
                    return response
                problem = f"HTTP {status} {response.reason}"
                if status == 401 and self.authenticator.renewable and not renewed:
                    # The token may have been revoked early: fetch a new one once, then retry right away.
                    renewed = True
                    self.authenticator.ensure_token(self.session, force=True)
                    attempt -= 1
                    continue
                if status == 429:
                    wait = retry_after(response) or self.retry.backoff(attempt)
                    if wait > self.retry.max_retry_after_seconds:
                        raise self._error(method, url, params, status, attempt,
                                          f"{problem}: Retry-After {wait:.0f}s exceeds max_retry_after_seconds")
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
