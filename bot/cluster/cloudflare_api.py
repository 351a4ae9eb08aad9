"""The Cloudflare API v4 transport: one authenticated request with bounded retries, and its errors.

Design. Every call goes through :meth:`CloudflareApi.request`, which returns the whole
envelope (``{"success": true, "result": ...}``) or raises :class:`CloudflareError`, carrying
the API's ``errors`` (code and message) for the check run. ``success: false`` with a 200 is an
error too. 429, 5xx and connection errors are retried a bounded number of times with
exponential backoff; ``retry-after`` is honoured up to a cap (Cloudflare's rate limit blocks
for five minutes, longer than a job should sleep).

The API token is sent only in the ``Authorization`` header, registered with the log redactor,
and never part of an exception or a ``repr``.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import aiohttp

from bot.core import logs

log = logging.getLogger(__name__)

__all__ = ["CloudflareApi", "CloudflareError"]


class CloudflareError(Exception):
    """The Cloudflare API refused or failed a request; ``errors`` are the API's own."""

    def __init__(self, method: str, path: str, status: int | None, errors: list[dict[str, Any]] | None = None,
                 detail: str | None = None):
        self.method, self.path, self.status = method, path, status
        self.errors = list(errors or [])
        self.detail = detail
        super().__init__(str(self))

    @property
    def codes(self) -> list[int]:
        return [code for e in self.errors if isinstance(code := e.get("code"), int)]

    @property
    def messages(self) -> list[str]:
        """The API's messages, e.g. ``["[10000] Authentication error"]`` (for the check run)."""
        out = [f"[{e.get('code')}] {e.get('message')}" if e.get("code") is not None else str(e.get("message"))
               for e in self.errors]
        return out or [self.detail or "no error message"]

    def __str__(self) -> str:
        status = f"HTTP {self.status}" if self.status is not None else "no response"
        return logs.redactor(f"Cloudflare API {self.method} {self.path}: {status}: {'; '.join(self.messages)}")


def _envelope(text: str) -> dict[str, Any]:
    """The decoded answer, or ``{}`` for a body that is not a JSON object."""
    try:
        envelope = json.loads(text) if text else {}
    except ValueError:
        return {}
    return envelope if isinstance(envelope, dict) else {}


class CloudflareApi:
    """Calls the API at ``api_url`` with ``api_token`` over the bot's shared ``session`` (not closed here).

    ``sleep`` is injected so tests do not wait for backoff.
    """

    def __init__(self, api_url: str, api_token: str, session: aiohttp.ClientSession, *, retries: int = 3,
                 backoff: float = 1.0, max_delay: float = 30.0, request_timeout: float = 30.0,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep):
        self._url = api_url
        self._headers = {"Authorization": f"Bearer {api_token}", "Accept": "application/json"}
        self._session = session
        self._retries, self._backoff, self._max_delay, self._sleep = retries, backoff, max_delay, sleep
        self._timeout = aiohttp.ClientTimeout(total=request_timeout)
        logs.redactor.add(api_token)

    def __repr__(self) -> str:
        return f"CloudflareApi({self._url!r})"

    async def request(self, method: str, path: str, *, params: Mapping[str, str] | None = None,
                      body: Any = None) -> dict[str, Any]:
        """One API call; returns the whole envelope. Retries 429, 5xx and connection errors."""
        delay = self._backoff
        for attempt in range(self._retries + 1):
            last = attempt == self._retries
            try:
                async with self._session.request(method, self._url + path, params=params, json=body,
                                                 headers=self._headers, timeout=self._timeout) as resp:
                    text = await resp.text()
                    retry_after = resp.headers.get("Retry-After")
                    status = resp.status
            except (TimeoutError, aiohttp.ClientError) as e:
                if last:
                    raise CloudflareError(method, path, None, detail=f"{type(e).__name__}: {e}") from None
                log.warning("cloudflare %s %s: %s, retrying in %.1fs", method, path, type(e).__name__, delay)
                await self._sleep(delay)
                delay *= 2
                continue
            envelope = _envelope(text)
            if (status == 429 or status >= 500) and not last:
                wait = min(self._retry_after(retry_after, delay), self._max_delay)
                log.warning("cloudflare %s %s: HTTP %d, retrying in %.1fs", method, path, status, wait)
                await self._sleep(wait)
                delay *= 2
                continue
            if status >= 400 or envelope.get("success") is not True:
                errors = [e for e in envelope.get("errors") or [] if isinstance(e, dict)]
                detail = None if errors else (text[:200] if text else None)
                raise CloudflareError(method, path, status, errors, detail=detail)
            return envelope
        raise AssertionError("unreachable")  # pragma: no cover

    @staticmethod
    def _retry_after(header: str | None, delay: float) -> float:
        if header and header.strip().isdigit():
            return float(header.strip())
        return delay

    async def list_all(self, path: str, params: Mapping[str, str]) -> list[dict[str, Any]]:
        """Every result of a paginated listing (100 a page)."""
        out: list[dict[str, Any]] = []
        page = 1
        while True:
            envelope = await self.request("GET", path, params={**params, "page": str(page), "per_page": "100"})
            out += [r for r in envelope.get("result") or [] if isinstance(r, dict)]
            info = envelope.get("result_info") or {}
            if page >= int(info.get("total_pages") or 1):
                return out
            page += 1

    async def delete(self, path: str) -> bool:
        """DELETE; False when it was already gone (404)."""
        try:
            await self.request("DELETE", path)
            return True
        except CloudflareError as e:
            if e.status == 404:
                return False
            raise
