"""A well-behaved GitHub API client.

gidgethub builds requests and decodes answers; this module owns the transport
underneath it (``_request``), which is where every request gets:

* its credential at the last moment (the app JWT or the installation token,
  asked of :class:`~bot.auth.AppAuth` right before sending, so long jobs survive
  token expiry), and one re-mint when GitHub answers 401;
* bounded retries: 5xx and connection errors back off exponentially; primary
  and secondary rate limits (403/429) wait for ``retry-after``, else
  ``x-ratelimit-reset``, else a minute, doubling;
* serialised, paced writes: GitHub's secondary limits allow ~80
  content-creating requests a minute per installation and ask for them to be
  made one at a time, so POST/PATCH/PUT/DELETE of one installation pass
  through one lock and a token bucket;
* metrics (calls by status, rate limit remaining) and logs without tokens.

https://docs.github.com/en/rest/using-the-rest-api/best-practices-for-using-the-rest-api
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import aiohttp
from gidgethub import BadRequest
from gidgethub import aiohttp as gh_aiohttp

from bot.core.metrics import Metrics
from bot.github.auth import AppAuth
from bot.settings.config import Settings

log = logging.getLogger(__name__)

USER_AGENT = "devenv-bot"
WRITE_METHODS = frozenset({"POST", "PATCH", "PUT", "DELETE"})
Sleep = Callable[[float], Awaitable[None]]


class GitHubUnavailable(Exception):
    """GitHub could not be reached or kept failing after every retry."""


class TokenBucket:
    """Paces content-creating requests: ``burst`` at once, then ``rate`` per second."""

    def __init__(self, per_minute: float, burst: int, clock: Callable[[], float], sleep: Sleep) -> None:
        self.rate = per_minute / 60.0
        self.capacity = float(max(1, burst))
        self.tokens = self.capacity
        self.clock = clock
        self.sleep = sleep
        self.updated = clock()

    async def take(self) -> None:
        if self.rate <= 0:
            return
        while True:
            now = self.clock()
            self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.rate)
            self.updated = now
            if self.tokens >= 1:
                self.tokens -= 1
                return
            await self.sleep((1 - self.tokens) / self.rate)


class _Installation:
    def __init__(self, bucket: TokenBucket) -> None:
        self.write_lock = asyncio.Lock()
        self.bucket = bucket


def _rate_limited(status: int, headers: Mapping[str, str], body: bytes) -> bool:
    if status == 429:
        return True
    if status != 403:
        return False
    if "retry-after" in headers or headers.get("x-ratelimit-remaining") == "0":
        return True
    return b"rate limit" in body.lower()


class GitHubClient:
    """Process-wide: one HTTP session, the app's auth, per-installation pacing."""

    def __init__(self, settings: Settings, auth: AppAuth | None, session: aiohttp.ClientSession,
                 metrics: Metrics, *, clock: Callable[[], float] = time.monotonic,
                 wall_clock: Callable[[], float] = time.time, sleep: Sleep = asyncio.sleep) -> None:
        self.settings = settings
        self.auth = auth
        self.session = session
        self.metrics = metrics
        self.clock = clock
        self.wall_clock = wall_clock
        self.sleep = sleep
        self._installations: dict[int, _Installation] = {}
        self.calls = 0
        if auth is not None:
            auth.bind(self._mint)

    # -- the APIs handlers use -------------------------------------------------
    def installation(self, installation_id: int) -> GitHubAPI:
        """An API object acting as the app's installation (token fetched per request)."""
        return GitHubAPI(self, ("installation", installation_id))

    def app(self) -> GitHubAPI:
        """An API object acting as the app itself (JWT)."""
        return GitHubAPI(self, ("app", None))

    def anonymous(self) -> GitHubAPI:
        return GitHubAPI(self, ("none", None))

    async def _mint(self, installation_id: int, app_jwt: str, body: dict[str, Any] | None) -> dict[str, Any]:
        answer = await self.app().post(
            "/app/installations/{installation_id}/access_tokens",
            url_vars={"installation_id": str(installation_id)},
            data=body or {},
        )
        return answer

    # -- transport ------------------------------------------------------------
    def _installation_state(self, installation_id: int) -> _Installation:
        state = self._installations.get(installation_id)
        if state is None:
            state = _Installation(TokenBucket(self.settings.writes_per_minute, self.settings.write_burst,
                                              self.clock, self.sleep))
            self._installations[installation_id] = state
        return state

    async def send(self, identity: tuple[str, int | None], method: str, url: str,
                   headers: Mapping[str, str], body: bytes) -> tuple[int, Mapping[str, str], bytes]:
        kind, installation_id = identity
        if method in WRITE_METHODS and kind == "installation" and installation_id is not None:
            state = self._installation_state(installation_id)
            queued = self.clock()
            async with state.write_lock:
                await state.bucket.take()
                self.metrics.write_wait_seconds.observe(max(0.0, self.clock() - queued))
                return await self._send_with_retries(identity, method, url, headers, body)
        return await self._send_with_retries(identity, method, url, headers, body)

    async def _authorization(self, kind: str, installation_id: int | None) -> str | None:
        if kind == "app" and self.auth is not None:
            return f"Bearer {self.auth.app_jwt()}"
        if kind == "installation" and self.auth is not None and installation_id is not None:
            return f"token {await self.auth.installation_token(installation_id)}"
        return None

    async def _send_with_retries(self, identity: tuple[str, int | None], method: str, url: str,
                                 headers: Mapping[str, str], body: bytes) -> tuple[int, Mapping[str, str], bytes]:
        kind, installation_id = identity
        retries = self.settings.max_retries
        backoff = self.settings.retry_backoff
        reauthed = False
        attempt = 0
        while True:
            attempt += 1
            request_headers = {k: v for k, v in headers.items() if k.lower() != "authorization"}
            authorization = await self._authorization(kind, installation_id)
            if authorization:
                request_headers["authorization"] = authorization
            try:
                async with self.session.request(method, url, headers=request_headers, data=body) as response:
                    status, response_headers, data = response.status, response.headers, await response.read()
            except (TimeoutError, aiohttp.ClientError) as exc:
                self.metrics.api_calls.labels(method, "error").inc()
                if attempt > retries:
                    raise GitHubUnavailable(f"{method} {_path(url)}: {exc.__class__.__name__} after {attempt} tries") from exc
                delay = backoff * 2 ** (attempt - 1) * (1 + random.random() / 4)
                log.warning("GitHub unreachable (%s), retrying %s %s in %.1fs", exc.__class__.__name__,
                            method, _path(url), delay)
                await self.sleep(delay)
                continue
            self.calls += 1
            self.metrics.api_calls.labels(method, str(status)).inc()
            remaining = response_headers.get("x-ratelimit-remaining")
            if remaining is not None and remaining.isdigit():
                self.metrics.rate_limit_remaining.labels(str(installation_id or kind)).set(int(remaining))
                if int(remaining) < 100:
                    log.warning("GitHub rate limit low: %s requests left", remaining)
            if status == 401 and kind == "installation" and not reauthed and self.auth is not None:
                # The token may have been revoked or expired early: mint once more.
                reauthed = True
                assert installation_id is not None
                self.auth.invalidate(installation_id)
                log.info("GitHub answered 401; minting a new installation token")
                continue
            if status == 401 and kind == "app" and not reauthed and self.auth is not None:
                reauthed = True
                self.auth.invalidate_jwt()
                continue
            limited = _rate_limited(status, response_headers, data)
            if limited:
                primary = response_headers.get("x-ratelimit-remaining") == "0"
                self.metrics.rate_limit_hits.labels("primary" if primary else "secondary").inc()
            if limited and attempt <= retries:
                wait = self._rate_limit_wait(response_headers, attempt)
                if wait <= self.settings.max_rate_wait:
                    log.warning("GitHub rate limit hit (%s) on %s %s; waiting %.1fs", status, method,
                                _path(url), wait)
                    await self.sleep(wait)
                    continue
            if status >= 500 and attempt <= retries:
                delay = backoff * 2 ** (attempt - 1) * (1 + random.random() / 4)
                log.warning("GitHub answered %s on %s %s; retrying in %.1fs", status, method, _path(url), delay)
                await self.sleep(delay)
                continue
            return status, response_headers, data

    def _rate_limit_wait(self, headers: Mapping[str, str], attempt: int) -> float:
        retry_after = headers.get("retry-after")
        if retry_after is not None:
            try:
                return max(0.0, float(retry_after))
            except ValueError:
                pass
        reset = headers.get("x-ratelimit-reset")
        if reset is not None and headers.get("x-ratelimit-remaining") == "0":
            try:
                return max(0.0, float(reset) - self.wall_clock()) + 1
            except ValueError:
                pass
        return 60.0 * 2 ** (attempt - 1)


def _path(url: str) -> str:
    """The path of a URL, without query (which never holds secrets here, but keep logs short)."""
    rest = url.split("://", 1)[-1]
    path = "/" + rest.split("/", 1)[1] if "/" in rest else "/"
    return path.split("?", 1)[0]


class GitHubAPI(gh_aiohttp.GitHubAPI):
    """gidgethub's API with our transport: credentials, retries, pacing."""

    def __init__(self, client: GitHubClient, identity: tuple[str, int | None]) -> None:
        super().__init__(client.session, USER_AGENT, base_url=client.settings.api_url)
        self._client = client
        self.identity = identity

    @property
    def installation_id(self) -> int | None:
        return self.identity[1] if self.identity[0] == "installation" else None

    async def _request(self, method: str, url: str, headers: Mapping[str, str],
                       body: bytes = b"") -> tuple[int, Mapping[str, str], bytes]:
        return await self._client.send(self.identity, method, url, headers, body)


def is_not_found(exc: BaseException) -> bool:
    return isinstance(exc, BadRequest) and exc.status_code == 404
