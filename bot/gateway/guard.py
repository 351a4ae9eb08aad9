"""Rate limits on failed sign-ins, per source address and per claimed GitHub login.

A refused attempt (unknown key, no permission, no such environment) counts against both the
client's address and the login it claimed; once either has ``limit`` failures within ``window``
seconds, further attempts are refused at once, without asking GitHub, until the oldest failure
ages out.  A connection counts once however many keys it offers, and a connection that gets in
after a refused key (a stray key in the user's agent) takes its own failure back
(:meth:`FailureGuard.forgive`).  This bounds both key guessing against one account and one address
spraying many accounts, and it keeps strangers from spending the installation's GitHub rate
limit.  A success clears nothing else (it would let an attacker with one good key reset the
count).  Pure, with an injected clock.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable

__all__ = ["FailureGuard"]


class FailureGuard:
    def __init__(self, *, limit: int = 10, window: float = 300.0, maxsize: int = 10_000,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.limit, self.window, self.maxsize, self.clock = limit, window, maxsize, clock
        self._failures: dict[str, deque[float]] = {}

    def _recent(self, key: str) -> deque[float]:
        times = self._failures.get(key)
        if times is None:
            return deque()
        horizon = self.clock() - self.window
        while times and times[0] <= horizon:
            times.popleft()
        if not times:
            del self._failures[key]
        return times

    def blocked(self, source: str, login: str | None) -> str | None:
        """Why this attempt is refused unheard (too many recent failures), or None."""
        if len(self._recent(f"addr:{source}")) >= self.limit:
            return "too many failed attempts from your address; try again in a few minutes"
        if login and len(self._recent(f"login:{login.lower()}")) >= self.limit:
            return f"too many failed attempts for {login}; try again in a few minutes"
        return None

    def failed(self, source: str, login: str | None) -> None:
        now = self.clock()
        if len(self._failures) >= self.maxsize:  # forget the stalest entry rather than grow without bound
            self._failures.pop(next(iter(self._failures)))
        for key in (f"addr:{source}", f"login:{login.lower()}" if login else None):
            if key is not None:
                self._failures.setdefault(key, deque()).append(now)

    def forgive(self, source: str, login: str | None) -> None:
        """Take back one failure just counted (the same connection then got in)."""
        for key in (f"addr:{source}", f"login:{login.lower()}" if login else None):
            times = self._failures.get(key) if key is not None else None
            if times:
                times.pop()
                if not times:
                    del self._failures[key]  # type: ignore[arg-type]
