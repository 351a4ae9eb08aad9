"""Agent runs across replicas: one run per workspace in the whole Deployment, and who still runs one.

Design. The run service (:mod:`bot.agent.runs`) asks an :class:`AgentGuard` before it starts a run
and tells it when the run is over. Two implementations:

* :class:`LocalAgentGuard` (``DEVENV_STATE_BACKEND=file``): one process, whose own table of runs is
  the whole rule; nothing is held, nobody else runs anything.
* :class:`LeaseAgentGuard` (``kubernetes``): a Lease ``devenv-agent-<ws id>`` per workspace's run
  (:mod:`bot.replicas.leases`), taken before the run is accepted (held fresh by another replica: the
  request is refused), renewed every third of the lease duration by a task of its own while the run
  lasts, let go once the run's end is in its ledger entry. After each renewal the guard calls the
  run's ``watch`` (the run service looks there for an end another replica asked for).

What the Lease answers besides: :meth:`LeaseAgentGuard.held_elsewhere` says whether another replica
runs an agent on a workspace right now (its Lease is fresh). A start-up, and the leader at each round,
conclude only the unfinished runs whose Lease is not (their replica died or never took it), so a
replica starting during a rolling upgrade leaves the live replicas' runs alone; and a stop, rebuild or
delete on one replica asks the replica holding the Lease to end its run (:mod:`bot.agent.runs`).

A lost renewal (another replica took the Lease over after this one was cut off for a whole duration)
is logged as an error; the run is not killed here: the replica that took the Lease over concludes the
run as interrupted and ends its agent by run id, which ends this side's run too.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from bot.replicas.coordination import Coordination, LeaseCoordination
from bot.replicas.leases import Leases, keep_renewed

log = logging.getLogger(__name__)

__all__ = ["AgentGuard", "LeaseAgentGuard", "LocalAgentGuard", "agent_guard", "agent_lease"]


def agent_lease(ws_id: str) -> str:
    return f"devenv-agent-{ws_id}"


class AgentGuard(Protocol):
    """What the run service needs from the other replicas (see the module docstring)."""

    async def claim(self, ws_id: str, watch: Callable[[], None]) -> bool:
        """Take the workspace's run for this replica; False when another replica runs one there."""

    async def release(self, ws_id: str) -> None:
        """The run is over (its end is journalled): let the workspace's run go."""

    async def held_elsewhere(self, ws_id: str) -> bool:
        """Does another replica run an agent on ``ws_id`` now? (True when unsure: nothing is ended then.)"""

    @property
    def shared(self) -> bool:
        """Do other replicas run agents too?"""


class LocalAgentGuard:
    """One process (the file backend): its table of runs is the whole rule."""

    async def claim(self, ws_id: str, watch: Callable[[], None]) -> bool:
        return True

    async def release(self, ws_id: str) -> None:
        return None

    async def held_elsewhere(self, ws_id: str) -> bool:
        return False

    @property
    def shared(self) -> bool:
        return False


class LeaseAgentGuard:
    """A Lease per workspace's agent run (see the module docstring)."""

    def __init__(self, leases: Leases, *, sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
                 clock: Callable[[], float] = time.time) -> None:
        self.leases = leases
        self.sleep = sleep
        self.clock = clock
        self._renewers: dict[str, asyncio.Task[None]] = {}  # ws id -> the task renewing its Lease

    @property
    def shared(self) -> bool:
        return True

    async def claim(self, ws_id: str, watch: Callable[[], None]) -> bool:
        name = agent_lease(ws_id)
        try:
            if not await self.leases.try_acquire(name):
                return False
        except Exception:
            log.exception("taking lease %s failed; the agent run is refused", name)
            return False
        old = self._renewers.pop(ws_id, None)
        if old is not None:
            old.cancel()
        self._renewers[ws_id] = asyncio.get_running_loop().create_task(self._renew(name, watch), name=f"renew {name}")
        return True

    async def _renew(self, name: str, watch: Callable[[], None]) -> None:
        def lost() -> None:
            log.error("LOST lease %s: another replica may conclude this agent run as interrupted", name)
        await keep_renewed(self.leases, name, every=self.leases.duration / 3, sleep=self.sleep, on_lost=lost,
                           after=watch)

    async def release(self, ws_id: str) -> None:
        renewer = self._renewers.pop(ws_id, None)
        if renewer is not None:
            renewer.cancel()
            await asyncio.gather(renewer, return_exceptions=True)
        try:
            await self.leases.release(agent_lease(ws_id))
        except Exception as exc:  # it expires on its own within a lease duration
            log.warning("releasing lease %s failed (%s); it expires by itself", agent_lease(ws_id), exc)

    async def held_elsewhere(self, ws_id: str) -> bool:
        try:
            state = await self.leases.read(agent_lease(ws_id))
        except Exception as exc:
            log.warning("reading lease %s failed (%s); its run is taken to be alive", agent_lease(ws_id), exc)
            return True
        return (state is not None and state.holder is not None and state.holder != self.leases.holder
                and not state.expired(self.clock()))


def agent_guard(coordination: Coordination) -> AgentGuard:
    """The guard that goes with the environments' coordination: Leases when they use Leases."""
    if isinstance(coordination, LeaseCoordination):
        return LeaseAgentGuard(coordination.leases, sleep=coordination.sleep, clock=coordination.clock)
    return LocalAgentGuard()
