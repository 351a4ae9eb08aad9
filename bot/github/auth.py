"""The one object that owns the GitHub App's credentials.

It signs the app JWT (RS256, ``iat`` 60 s in the past to absorb clock drift,
``exp`` under GitHub's 10-minute cap) and reuses it until shortly before it
expires; it mints installation tokens and caches each until shortly before its
``expires_at``.  Callers ask it for a token right before every request, so an
hour-long job never holds a dead token, and call :meth:`invalidate` after a
401 so the next ask mints a fresh one.  Handlers never see the key.

https://docs.github.com/en/apps/creating-github-apps/authenticating-with-a-github-app/generating-a-json-web-token-jwt-for-a-github-app
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import Awaitable, Callable
from typing import Any

import jwt
from cachetools import TLRUCache

from bot.core.logs import redactor

JWT_BACKDATE = 60  # seconds: GitHub recommends iat 60 s in the past
JWT_LIFETIME = 540  # seconds after iat; exp - iat must stay ≤ 600
JWT_REFRESH_MARGIN = 60  # re-sign this long before exp
TOKEN_REFRESH_MARGIN = 300  # treat installation tokens as expired 5 minutes early

Clock = Callable[[], float]
# (installation_id, jwt, body) -> the JSON answer of POST /app/installations/{id}/access_tokens
Minter = Callable[[int, str, dict[str, Any] | None], Awaitable[dict[str, Any]]]


def parse_github_time(text: str) -> float:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


class AppAuth:
    def __init__(self, app_id: str, private_key: str, *, clock: Clock = time.time,
                 token_clock: Clock | None = None, max_installations: int = 10_000) -> None:
        self.app_id = app_id
        self._key = private_key
        self._clock = clock
        self._jwt: str | None = None
        self._jwt_refresh_at = 0.0
        self._minter: Minter | None = None
        # TLRU: each entry lives until its own expires_at minus the margin.
        self._tokens: TLRUCache[int, tuple[str, float]] = TLRUCache(
            maxsize=max_installations, ttu=self._time_to_use, timer=token_clock or clock
        )
        self._locks: dict[int, asyncio.Lock] = {}
        self.mints = 0
        redactor.add(private_key)

    @staticmethod
    def _time_to_use(_key: int, value: tuple[str, float], now: float) -> float:
        return value[1] - TOKEN_REFRESH_MARGIN

    def bind(self, minter: Minter) -> None:
        """Tell the auth how to reach ``POST /app/installations/{id}/access_tokens``."""
        self._minter = minter

    def app_jwt(self) -> str:
        now = self._clock()
        if self._jwt is None or now >= self._jwt_refresh_at:
            iat = int(now) - JWT_BACKDATE
            exp = iat + JWT_LIFETIME
            self._jwt = jwt.encode({"iat": iat, "exp": exp, "iss": self.app_id}, self._key, algorithm="RS256")
            self._jwt_refresh_at = exp - JWT_REFRESH_MARGIN
            redactor.add(self._jwt)
        return self._jwt

    async def installation_token(self, installation_id: int) -> str:
        cached = self._tokens.get(installation_id)
        if cached is not None:
            return cached[0]
        lock = self._locks.setdefault(installation_id, asyncio.Lock())
        async with lock:  # many deliveries at once for one installation: one mint
            cached = self._tokens.get(installation_id)
            if cached is not None:
                return cached[0]
            answer = await self.mint(installation_id)
            token, expires = answer["token"], parse_github_time(answer["expires_at"])
            self._tokens[installation_id] = (token, expires)
            return token

    async def mint(self, installation_id: int, body: dict[str, Any] | None = None) -> dict[str, Any]:
        """Mint a token; with ``body`` a narrowed one (repositories, permissions) not cached."""
        if self._minter is None:
            raise RuntimeError("AppAuth.bind() was not called")
        answer = await self._minter(installation_id, self.app_jwt(), body)
        redactor.add(answer.get("token"))
        self.mints += 1
        return answer

    def invalidate(self, installation_id: int, token: str | None = None) -> None:
        """Forget a token GitHub refused (only if it is still the cached one)."""
        cached = self._tokens.get(installation_id)
        if cached is not None and (token is None or cached[0] == token):
            del self._tokens[installation_id]

    def invalidate_jwt(self) -> None:
        self._jwt = None
