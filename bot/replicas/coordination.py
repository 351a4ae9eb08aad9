"""What the environment service asks before DevPod runs: the workspace to itself, and a DevPod slot.

Design. The executor (:mod:`bot.environments.executor`) wraps each operation in
:meth:`Coordination.workspace` (held from before the local DevPod limiter until the operation is
concluded) and the DevPod step in :meth:`Coordination.slot`; the takeover scan asks
:meth:`Coordination.abandoned`. Two implementations:

* :class:`LocalCoordination` (``DEVENV_STATE_BACKEND=file``, the default): one process, whose
  :class:`~bot.environments.queue.WorkspaceQueue` already runs one operation per workspace and whose
  ``FairLimiter`` is the global cap; every method is a no-op, the bot behaves exactly as before.
* :class:`LeaseCoordination` (``kubernetes``): a Lease ``devenv-ws-<ws id>`` per workspace and
  ``DEVENV_MAX_CONCURRENT_OPS`` slot Leases ``devenv-slot-<i>`` (:mod:`bot.replicas.leases`). A Lease
  held fresh elsewhere is polled with back-off (0.5 s doubling up to a third of the lease duration);
  the caller hears ``on_wait`` once, to say so on the check run. While held, each Lease is renewed
  every third of its duration by a task of its own.

A lost renewal (the API server unreachable for a whole lease duration, or another replica took the
Lease over) is logged as an error and counted (``devenv_lease_lost_total``), and the renewer tries
to take it back. DevPod is **not** killed: the operation may be half-way through a build, and
killing DevPod would leave the workspace worse off than letting it finish; the real DevPod's own
per-workspace lock (CONTRACT §9) is the last guard. This is the choice of client-go's callers that
keep working after a lost lease: safety is approximate for the length of one lease duration.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Protocol

from bot.replicas.leases import Leases, keep_renewed

log = logging.getLogger(__name__)

__all__ = ["Coordination", "LeaseCoordination", "LocalCoordination", "slot_name", "workspace_lease"]

#: First pause between two tries of a Lease held elsewhere (doubles up to a third of the duration).
FIRST_POLL = 0.5


def workspace_lease(ws_id: str) -> str:
    return f"devenv-ws-{ws_id}"


def slot_name(i: int) -> str:
    return f"devenv-slot-{i}"


class Coordination(Protocol):
    """What the environment service needs from the other replicas (see the module docstring)."""

    def workspace(self, ws_id: str, on_wait: Callable[[], None]) -> contextlib.AbstractAsyncContextManager[None]:
        """Hold the workspace against other replicas' operations; ``on_wait`` when one runs there."""

    def slot(self, on_wait: Callable[[], None]) -> contextlib.AbstractAsyncContextManager[None]:
        """Hold one of the cluster-wide DevPod slots."""

    def mutex(self, name: str) -> contextlib.AbstractAsyncContextManager[None]:
        """Hold the Lease ``name`` against the other replicas (e.g. around a read-modify-write)."""

    async def abandoned(self, ws_id: str, updated_at: float) -> bool:
        """Is an operation recorded on ``ws_id`` (the record last written at ``updated_at``) run by nobody?"""

    @property
    def resumes_at_start(self) -> bool:
        """Does start-up resume every unfinished operation (one process), or the takeover scan?"""


class LocalCoordination:
    """One process: nothing to coordinate (the default file backend)."""

    @contextlib.asynccontextmanager
    async def workspace(self, ws_id: str, on_wait: Callable[[], None]) -> AsyncIterator[None]:
        yield

    @contextlib.asynccontextmanager
    async def slot(self, on_wait: Callable[[], None]) -> AsyncIterator[None]:
        yield

    @contextlib.asynccontextmanager
    async def mutex(self, name: str) -> AsyncIterator[None]:
        yield

    async def abandoned(self, ws_id: str, updated_at: float) -> bool:
        return False  # start-up resumes everything; nobody else could have run it

    @property
    def resumes_at_start(self) -> bool:
        return True


class LeaseCoordination:
    """Leases in the bot's namespace (``DEVENV_STATE_BACKEND=kubernetes``)."""

    def __init__(self, leases: Leases, *, slots: int, on_lost: Callable[[str], None] = lambda _: None,
                 sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
                 clock: Callable[[], float] = time.time, first_poll: float = FIRST_POLL) -> None:
        self.leases = leases
        self.first_poll = first_poll
        self.slots = slots
        self.on_lost = on_lost  # hears "workspace" or "slot" when a renewal was lost
        self.sleep = sleep
        self.clock = clock

    @property
    def resumes_at_start(self) -> bool:
        return False

    @property
    def renew_every(self) -> float:
        return self.leases.duration / 3

    async def _poll(self, take: Callable[[], Awaitable[str | None]], on_wait: Callable[[], None]) -> str:
        delay, told = self.first_poll, False
        while True:
            name = await take()
            if name is not None:
                return name
            if not told:
                told = True
                on_wait()
            await self.sleep(delay)
            delay = min(delay * 2, self.renew_every)

    @contextlib.asynccontextmanager
    async def _holding(self, name: str, what: str) -> AsyncIterator[None]:
        renewer = asyncio.get_running_loop().create_task(self._renew(name, what), name=f"renew {name}")
        try:
            yield
        finally:
            renewer.cancel()
            await asyncio.gather(renewer, return_exceptions=True)
            try:
                await self.leases.release(name)
            except Exception as exc:  # it expires on its own within a lease duration
                log.warning("releasing lease %s failed (%s); it expires by itself", name, exc)

    async def _renew(self, name: str, what: str) -> None:
        def lost() -> None:
            log.error("LOST lease %s: another replica may run DevPod on it now; this replica's "
                      "operation goes on (DevPod is not killed half-way)", name)
            self.on_lost(what)
        await keep_renewed(self.leases, name, every=self.renew_every, sleep=self.sleep, on_lost=lost)

    @contextlib.asynccontextmanager
    async def workspace(self, ws_id: str, on_wait: Callable[[], None]) -> AsyncIterator[None]:
        name = workspace_lease(ws_id)

        async def take() -> str | None:
            return name if await self.leases.try_acquire(name) else None

        await self._poll(take, on_wait)
        async with self._holding(name, "workspace"):
            yield

    @contextlib.asynccontextmanager
    async def slot(self, on_wait: Callable[[], None]) -> AsyncIterator[None]:
        async def take() -> str | None:
            for i in range(self.slots):
                if await self.leases.try_acquire(slot_name(i)):
                    return slot_name(i)
            return None

        name = await self._poll(take, on_wait)
        async with self._holding(name, "slot"):
            yield

    @contextlib.asynccontextmanager
    async def mutex(self, name: str) -> AsyncIterator[None]:
        async def take() -> str | None:
            return name if await self.leases.try_acquire(name) else None

        await self._poll(take, lambda: log.info("waiting for lease %s, held by another replica", name))
        async with self._holding(name, "mutex"):
            yield

    async def abandoned(self, ws_id: str, updated_at: float) -> bool:
        """Nobody runs it: the workspace Lease is absent or let go and the record has not been written for a
        lease duration, or its holder stopped renewing it, or its holder is this replica (which, the caller
        has checked, runs nothing there: it restarted)."""
        now, duration = self.clock(), self.leases.duration
        state = await self.leases.read(workspace_lease(ws_id))
        if state is None or not state.holder:
            # Released (or never taken): a replica between taking the op and taking the Lease, or waiting
            # for it, retakes it within a third of a duration; give it a whole one.
            quiet = now - updated_at > duration
            return quiet and (state is None or state.renewed is None or now - state.renewed > duration)
        if state.holder == self.leases.holder:
            return True
        return state.expired(now)
