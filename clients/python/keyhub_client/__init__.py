"""keyhub's Python client: the generated package ``keyhub_api`` (from
openapi.yaml, by scripts/clients.sh) plus the two things a generator does not
write: retries that honour ``Retry-After``, and the rate-limit headers.

    from keyhub_client import connect, rate_limit
    from keyhub_api.api.default import list_api_keys

    client = connect("http://127.0.0.1:3000", "kh_live_...")
    r = list_api_keys.sync_detailed(client=client, size=10)
    print(r.status_code, r.parsed, rate_limit(r))
"""

from __future__ import annotations

import email.utils
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Callable, Literal, Mapping, Optional

import httpx

from keyhub_api.client import AuthenticatedClient

__all__ = [
    "AsyncRetryTransport",
    "RateLimit",
    "Retry",
    "RetryPolicy",
    "RetryTransport",
    "connect",
    "rate_limit",
    "retry_after",
]

#: Methods a 503 may repeat: a 503 can come after the change was made (the
#: store answered late), so only a request that is safe to send twice goes
#: again. A 429 is refused before anything is done, so every method retries.
IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})


@dataclass(frozen=True)
class Retry:
    """One retry the policy made: what was answered and how long it waited."""

    attempt: int
    status: int
    delay: float


@dataclass(frozen=True)
class RetryPolicy:
    """Retries of 429 and 503 after the ``Retry-After`` the server sent.

    Bounded twice: at most ``max_attempts`` requests in all, and at most
    ``max_total_wait`` seconds of waiting. A ``Retry-After`` that would go
    past the budget (or a response without one) is returned as it is, at
    once, so the caller sees the 429 and its headers instead of a hang.
    """

    max_attempts: int = 3
    max_total_wait: float = 60.0
    on_retry: Optional[Callable[[Retry], None]] = None

    def delay(self, request: httpx.Request, response: httpx.Response, attempt: int, waited: float) -> Optional[float]:
        """Seconds to wait before sending `request` again, or None to stop."""
        if attempt >= self.max_attempts:
            return None
        if response.status_code == 503 and request.method not in IDEMPOTENT:
            return None
        if response.status_code not in (429, 503):
            return None
        seconds = retry_after(response.headers.get("retry-after"))
        if seconds is None or waited + seconds > self.max_total_wait:
            return None
        return seconds


def retry_after(value: Optional[str], now: Optional[datetime] = None) -> Optional[float]:
    """``Retry-After`` as seconds: delay-seconds, or an HTTP date (RFC 9110)."""
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    now = now or datetime.now(timezone.utc)
    return max(0.0, (when - now).total_seconds())


class RetryTransport(httpx.BaseTransport):
    """Sends a request again while the policy says so."""

    def __init__(self, policy: RetryPolicy, inner: Optional[httpx.BaseTransport] = None):
        self.policy = policy
        self.inner = inner or httpx.HTTPTransport()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        attempt, waited = 1, 0.0
        while True:
            response = self.inner.handle_request(request)
            delay = self.policy.delay(request, response, attempt, waited)
            if delay is None:
                return response
            response.close()
            if self.policy.on_retry:
                self.policy.on_retry(Retry(attempt, response.status_code, delay))
            time.sleep(delay)
            attempt, waited = attempt + 1, waited + delay

    def close(self) -> None:
        self.inner.close()


class AsyncRetryTransport(httpx.AsyncBaseTransport):
    """RetryTransport for the generated ``asyncio`` functions."""

    def __init__(self, policy: RetryPolicy, inner: Optional[httpx.AsyncBaseTransport] = None):
        self.policy = policy
        self.inner = inner or httpx.AsyncHTTPTransport()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        import asyncio

        attempt, waited = 1, 0.0
        while True:
            response = await self.inner.handle_async_request(request)
            delay = self.policy.delay(request, response, attempt, waited)
            if delay is None:
                return response
            await response.aclose()
            if self.policy.on_retry:
                self.policy.on_retry(Retry(attempt, response.status_code, delay))
            await asyncio.sleep(delay)
            attempt, waited = attempt + 1, waited + delay

    async def aclose(self) -> None:
        await self.inner.aclose()


@dataclass(frozen=True)
class RateLimit:
    """The ``X-RateLimit-*`` headers of one response: the tightest window's
    limit, what is left of it, and when it resets (Unix seconds)."""

    limit: int
    remaining: int
    reset: int


def rate_limit(response) -> Optional[RateLimit]:
    """The rate-limit headers of a generated ``Response`` (or an httpx
    response), or None when the response has none."""
    headers: Mapping[str, str] = response.headers
    try:
        return RateLimit(
            limit=int(headers["x-ratelimit-limit"]),
            remaining=int(headers["x-ratelimit-remaining"]),
            reset=int(headers["x-ratelimit-reset"]),
        )
    except (KeyError, ValueError):
        return None


def connect(
    base_url: str,
    api_key: str,
    *,
    retry: RetryPolicy = RetryPolicy(),
    header: Literal["authorization", "x-api-key"] = "authorization",
    timeout: float = 30.0,
) -> AuthenticatedClient:
    """A generated ``AuthenticatedClient`` that sends `api_key` as
    ``Authorization: Bearer`` (or ``X-API-Key``) and retries per `retry`,
    for both the ``sync`` and the ``asyncio`` functions."""
    if header == "x-api-key":
        client = AuthenticatedClient(base_url=base_url, token=api_key, prefix="", auth_header_name="X-API-Key")
    else:
        client = AuthenticatedClient(base_url=base_url, token=api_key)
    auth = {client.auth_header_name: f"{client.prefix} {api_key}" if client.prefix else api_key}
    client.set_httpx_client(
        httpx.Client(base_url=base_url, headers=auth, timeout=timeout, transport=RetryTransport(retry))
    )
    client.set_async_httpx_client(
        httpx.AsyncClient(base_url=base_url, headers=auth, timeout=timeout, transport=AsyncRetryTransport(retry))
    )
    return client
