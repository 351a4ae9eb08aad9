"""Keys linked to a GitHub login through the browser sign-in: one-time codes, and fingerprint → login.

A key that is not on the claimed login's GitHub account may be tied to it by the login's owner:
the gateway makes a :class:`PendingLink` (a one-time code, ``CODE_TTL`` seconds) and prints a
link to the bot's page (:mod:`bot.gateway.link_page`); once the signed-in owner confirms there,
:meth:`KeyLinks.confirm` remembers ``fingerprint → login`` for ``ttl`` seconds and wakes the
waiting connection.  Codes live in memory only, are single-use (confirming pops them; the
connection drops them when it stops waiting) and are never logged.  The links are kept in
``<state dir>/ssh/key_links.json`` (mode 0600, written whole through a temporary file), so they
survive a restart; an expired one is forgotten when read.  Pure but for the file, with an
injected clock.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Callable
from pathlib import Path

from bot.core.files import write_atomic

__all__ = ["CODE_TTL", "KeyLinks", "PendingLink"]

#: How long a printed link may be used, and how long the connection waits for it.
CODE_TTL = 120.0
#: Pending links at once (each holds one authenticated connection waiting).
MAX_PENDING = 100


@dataclasses.dataclass
class PendingLink:
    code: str
    fingerprint: str
    login: str  # the login the connection claims: only its owner may confirm
    ws_id: str
    expires: float
    done: asyncio.Event = dataclasses.field(default_factory=asyncio.Event)


class KeyLinks:
    def __init__(self, path: Path, *, ttl: float, clock: Callable[[], float] = time.time) -> None:
        self.path, self.ttl, self.clock = path, ttl, clock
        self._pending: dict[str, PendingLink] = {}
        self._secret = secrets.token_bytes(32)  # binds the page's confirm form to its code and login

    # -- the remembered links
    def _read(self) -> dict[str, dict[str, object]]:
        try:
            data = json.loads(self.path.read_text())
        except (FileNotFoundError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def linked(self, fingerprint: str) -> str | None:
        """The login the key was linked to, if the link has not expired."""
        entry = self._read().get(fingerprint)
        if not isinstance(entry, dict) or not isinstance(entry.get("until"), (int, float)):
            return None
        login = entry.get("login")
        return login if isinstance(login, str) and float(entry["until"]) > self.clock() else None  # type: ignore[arg-type]

    def remember(self, fingerprint: str, login: str) -> None:
        now = self.clock()
        data = {fp: e for fp, e in self._read().items()
                if isinstance(e, dict) and isinstance(e.get("until"), (int, float)) and float(e["until"]) > now}  # type: ignore[arg-type]
        data[fingerprint] = {"login": login, "until": now + self.ttl}
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        write_atomic(self.path, json.dumps(data))

    # -- the one-time codes
    def start(self, fingerprint: str, login: str, ws_id: str) -> PendingLink | None:
        """A new pending link (None: too many waiting already)."""
        self._expire()
        if len(self._pending) >= MAX_PENDING:
            return None
        pending = PendingLink(secrets.token_urlsafe(16), fingerprint, login, ws_id, self.clock() + CODE_TTL)
        self._pending[pending.code] = pending
        return pending

    def lookup(self, code: str) -> PendingLink | None:
        self._expire()
        return self._pending.get(code) if code else None

    def token(self, code: str, login: str) -> str:
        """The confirm form's token: only a page shown to ``login`` for ``code`` has it."""
        return hmac.new(self._secret, f"{code}\n{login.lower()}".encode(), hashlib.sha256).hexdigest()

    def confirm(self, code: str, login: str) -> PendingLink | None:
        """Link the code's key to ``login`` (its claimed owner) and wake the connection; single use."""
        pending = self.lookup(code)
        if pending is None or pending.login.lower() != login.lower():
            return None
        del self._pending[code]
        self.remember(pending.fingerprint, pending.login)
        pending.done.set()
        return pending

    def drop(self, code: str) -> None:
        self._pending.pop(code, None)

    def _expire(self) -> None:
        now = self.clock()
        for code in [c for c, p in self._pending.items() if p.expires <= now]:
            del self._pending[code]
