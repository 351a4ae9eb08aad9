"""The leader: the one replica that runs the singletons (idle reaper, catch-up, orphan sweep, takeover).

Design. :class:`LeaderElection` takes or renews the Lease ``devenv-bot-leader`` every third of the
lease duration (:mod:`bot.replicas.leases`). :meth:`LeaderElection.is_leader` is true only while the
last successful renewal is younger than the lease duration, on this replica's monotonic clock, so a
leader cut off from the API server stops acting before another replica may take the Lease over (it
must wait a whole duration after the last renewal it saw). When this replica becomes the leader,
``on_elected`` runs (the orphan sweep of links); while it leads, ``on_tick`` runs after each renewal
(the takeover scan). The singletons with loops of their own (reaper, catch-up) ask
:meth:`is_leader` at each round and skip the round on the other replicas; so when the leader dies,
another takes over within about one lease duration and its next round runs there.

:class:`AlwaysLeader` is the file backend's: one process, always the leader, no I/O.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from bot.replicas.leases import Leases

log = logging.getLogger(__name__)

__all__ = ["LEADER_LEASE", "AlwaysLeader", "Leadership", "LeaderElection"]

LEADER_LEASE = "devenv-bot-leader"


class Leadership(Protocol):
    def is_leader(self) -> bool: ...


class AlwaysLeader:
    """One process (the file backend): it runs every singleton."""

    def is_leader(self) -> bool:
        return True


class LeaderElection:
    """Holds ``devenv-bot-leader`` when it can (see the module docstring)."""

    def __init__(self, leases: Leases, *, name: str = LEADER_LEASE,
                 sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
                 timer: Callable[[], float] = time.monotonic) -> None:
        self.leases = leases
        self.name = name
        self.sleep = sleep
        self.timer = timer
        self.on_elected: list[Callable[[], Awaitable[None]]] = []
        self.on_tick: list[Callable[[], Awaitable[None]]] = []
        self._renewed: float | None = None  # timer() of the last successful take or renewal
        self._task: asyncio.Task[None] | None = None

    def is_leader(self) -> bool:
        return self._renewed is not None and self.timer() - self._renewed < self.leases.duration

    async def step(self) -> bool:
        """One round: take or renew the Lease, then the callbacks. True when this replica leads."""
        was = self.is_leader()
        asked = self.timer()
        try:
            ok = self.leases.holds(self.name) and await self.leases.renew(self.name)
            ok = ok or await self.leases.try_acquire(self.name)  # free, expired, or ours after a restart
        except Exception as exc:
            log.warning("leader lease: %s; trying again", exc)
            return self.is_leader()
        if ok:
            self._renewed = asked
        elif was:
            log.warning("this replica (%s) is no longer the leader", self.leases.holder)
            self._renewed = None
        if not self.is_leader():
            return False
        if not was:
            log.info("this replica (%s) is the leader now", self.leases.holder)
            await self._run(self.on_elected)
        await self._run(self.on_tick)
        return True

    @staticmethod
    async def _run(callbacks: list[Callable[[], Awaitable[None]]]) -> None:
        for callback in callbacks:
            try:
                await callback()
            except Exception:
                log.exception("a leader's task failed; it runs again next round")

    def start(self) -> None:
        """Step every third of the lease duration, from now on (the first :meth:`step` is the caller's,
        awaited at start-up so the singletons' first rounds know who leads)."""
        self._task = asyncio.get_running_loop().create_task(self._loop(), name="leader-election")

    async def _loop(self) -> None:
        while True:
            await self.sleep(self.leases.duration / 3)
            await self.step()

    async def stop(self) -> None:
        """Stop and hand over at once: the Lease is let go, so another replica need not wait it out."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self.leases.holds(self.name):
            try:
                await self.leases.release(self.name)
            except Exception as exc:
                log.warning("releasing the leader lease failed (%s); it expires by itself", exc)
        self._renewed = None
