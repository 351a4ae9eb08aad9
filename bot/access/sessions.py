"""Signed cookies and the sign-in store: who a browser is, proven without a server-side session.

Every cookie value is ``<base64url JSON>.<base64url HMAC-SHA256>`` keyed with
``DEVENV_SESSION_SECRET`` (:class:`Signer`); the purpose (``host``, ``session``, ``login``) is
inside the MAC, so a value made for one never passes as another, and each carries its expiry.

* The **host cookie** is host-only (no ``Domain``; ``__Host-`` prefixed under https) and names
  the preview host it was issued for, so a PR that steals it can replay it only against its own
  preview.  Its name is a hash of the host.
* The **session cookie** lives on the bot's own host and lets one GitHub sign-in open other
  previews without another trip to GitHub.
* The **login cookie** holds a sign-in in progress: its OAuth ``state`` and where to return,
  short-lived and named after that state (so sign-ins in several tabs do not overwrite each other).
  The PKCE verifier is derived from the state with the key, so no sign-in in progress is kept on
  the server: no number of ``/auth/login`` calls can push one out, and any replica can finish it.

One-time handoff codes are signed too (purpose ``handoff``): identity, preview host, a nonce and a
short expiry, so any replica can redeem one.  Single use is a set of used codes (:class:`UsedCodes`):
this process's memory (:class:`LocalUsedCodes`), or, with several replicas, a create-once marker in
the cluster (``bot.replicas.onceonly.ClusterUsedCodes``), kept until the code expires.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
from collections.abc import Callable
from typing import Any, NamedTuple, Protocol

from cachetools import TTLCache

from bot.settings.access import AccessSettings

__all__ = ["Identity", "LocalUsedCodes", "Sessions", "Signer", "UsedCodes", "b64", "cookie_values"]


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class Signer:
    """``<base64url JSON>.<base64url HMAC-SHA256>``; the purpose is inside the MAC, so values don't cross."""

    def __init__(self, key: bytes) -> None:
        if len(key) < 16:
            raise ValueError("the session key is too short")
        self._key = key

    def _mac(self, purpose: str, body: str) -> str:
        return b64(hmac.new(self._key, f"{purpose}\0{body}".encode(), hashlib.sha256).digest())

    def derive(self, purpose: str, text: str) -> str:
        """A secret only this key can compute from ``text`` (43 base64url characters)."""
        return self._mac(purpose, text)

    def dumps(self, purpose: str, data: dict[str, Any]) -> str:
        body = b64(json.dumps(data, separators=(",", ":")).encode())
        return f"{body}.{self._mac(purpose, body)}"

    def loads(self, purpose: str, value: str, now: float) -> dict[str, Any] | None:
        """The data if the value is authentic, of this purpose and not expired (``e``), else None."""
        body, dot, mac = value.partition(".")
        if not dot or len(value) > 2048 or not hmac.compare_digest(mac, self._mac(purpose, body)):
            return None
        try:
            data = json.loads(_unb64(body))
        except ValueError:
            return None
        if not isinstance(data, dict) or not isinstance(data.get("e"), (int, float)) or data["e"] <= now:
            return None
        return data


def cookie_values(header: str, name: str) -> list[str]:
    """Every value of cookie ``name`` in a Cookie header (a sibling may toss a same-named one)."""
    values = []
    for part in header.split(";"):
        key, eq, value = part.strip().partition("=")
        if eq and key == name:
            values.append(value.strip().strip('"'))
    return values


class Identity(NamedTuple):
    user_id: int
    login: str


class UsedCodes(Protocol):
    """The one-time codes already redeemed, until they expire."""

    async def first_use(self, key: str, expires: float) -> bool:
        """True the first time ``key`` is used (it is then remembered until ``expires``)."""
        ...


class LocalUsedCodes:
    """One process: the used codes in memory, each until its code expires."""

    def __init__(self, ttl: float, clock: Callable[[], float]) -> None:
        self._used: TTLCache[str, None] = TTLCache(maxsize=100_000, ttl=ttl + 1, timer=clock)

    async def first_use(self, key: str, expires: float) -> bool:
        if key in self._used:
            return False
        self._used[key] = None
        return True


class Sessions:
    """The cookies' names and values, and the signed one-time handoff codes."""

    def __init__(self, settings: AccessSettings, clock: Callable[[], float], used: UsedCodes | None = None) -> None:
        self.settings = settings
        self.clock = clock
        self.signer = Signer(settings.secret)
        self.used = used if used is not None else LocalUsedCodes(settings.handoff_ttl, clock)
        prefix = "__Host-" if settings.secure else ""
        self._host_cookie_prefix = f"{prefix}devenv-"
        self.session_cookie = ("__Host-" if settings.bot_secure else "") + "devenv-session"
        self.login_cookie = ("__Host-" if settings.bot_secure else "") + "devenv-login"

    def host_cookie(self, host: str) -> str:
        return self._host_cookie_prefix + hashlib.sha256(host.encode()).hexdigest()[:12]

    def host_identity(self, cookie_header: str, host: str) -> Identity | None:
        now = self.clock()
        for value in cookie_values(cookie_header, self.host_cookie(host)):
            data = self.signer.loads("host", value, now)
            if data is not None and data.get("h") == host:
                return Identity(int(data["u"]), str(data["l"]))
        return None

    def session_identity(self, cookie_header: str) -> Identity | None:
        now = self.clock()
        for value in cookie_values(cookie_header, self.session_cookie):
            data = self.signer.loads("session", value, now)
            if data is not None:
                return Identity(int(data["u"]), str(data["l"]))
        return None

    def is_bot_cookie(self, name: str) -> bool:
        """Whether ``name`` is one of the bot-host cookies (session or a sign-in in progress)."""
        return name in (self.session_cookie, self.login_cookie) or name.startswith(self.login_cookie + "-")

    def login_cookie_name(self, state: str) -> str:
        return f"{self.login_cookie}-{hashlib.sha256(state.encode()).hexdigest()[:16]}"

    def login_verifier(self, state: str) -> str:
        """The PKCE code verifier of the sign-in with this ``state``: derived, never stored."""
        return self.signer.derive("pkce", state)

    def login_return_url(self, cookie_header: str, state: str) -> str | None:
        """Where the sign-in with ``state`` returns, if this browser started it (its login cookie)."""
        for value in cookie_values(cookie_header, self.login_cookie_name(state)):
            data = self.signer.loads("login", value, self.clock())
            if (data is not None and isinstance(data.get("s"), str) and isinstance(data.get("r"), str)
                    and hmac.compare_digest(data["s"].encode(), state.encode())):
                return data["r"]
        return None

    def host_cookie_value(self, identity: Identity, host: str) -> str:
        return self.signer.dumps("host", {"u": identity.user_id, "l": identity.login, "h": host,
                                          "e": int(self.clock() + self.settings.host_cookie_ttl)})

    def session_cookie_value(self, identity: Identity) -> str:
        return self.signer.dumps("session", {"u": identity.user_id, "l": identity.login,
                                             "e": int(self.clock() + self.settings.session_ttl)})

    def login_cookie_value(self, state: str, return_url: str) -> str:
        return self.signer.dumps("login", {"s": state, "r": return_url,
                                           "e": int(self.clock() + self.settings.login_ttl)})

    def handoff_code(self, identity: Identity, host: str) -> str:
        """A one-time code that sets ``host``'s cookie for ``identity``, redeemable on any replica."""
        return self.signer.dumps("handoff", {"u": identity.user_id, "l": identity.login, "h": host,
                                             "n": b64(os.urandom(16)), "e": self.clock() + self.settings.handoff_ttl})

    async def redeem(self, code: str) -> tuple[Identity, str] | None:
        """(identity, host) the first time an authentic, unexpired code is used, else None. Raises when
        the used codes cannot be asked (the cluster is unreachable)."""
        data = self.signer.loads("handoff", code, self.clock())
        if data is None or not isinstance(data.get("h"), str):
            return None
        if not await self.used.first_use(hashlib.sha256(code.encode()).hexdigest(), float(data["e"])):
            return None
        return Identity(int(data["u"]), str(data["l"])), data["h"]
