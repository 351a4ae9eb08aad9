"""A ``coordination.k8s.io/v1`` Lease: who holds a name among the bot's replicas, and until when.

Design. The same protocol as client-go's leader election (``tools/leaderelection/resourcelock``),
over :class:`bot.cluster.kube.KubeApi` in the bot's own namespace:

* **acquire**: create the Lease (``holderIdentity`` = this replica, ``renewTime`` = now). A 409
  means it exists: read it; it is ours already (renew), held and fresh (refused), or free (no
  holder) or expired (``renewTime + leaseDurationSeconds < now``): take it with a PUT at the
  ``resourceVersion`` just read, so of two replicas racing for it the API server lets exactly one
  write win and the other gets 409 (refused). A change of holder counts ``leaseTransitions``.
* **renew**: a PUT of a fresh ``renewTime`` at the last ``resourceVersion`` this replica wrote;
  a 409 is re-read once (the object was rewritten by nobody else when we still hold it, e.g. a
  retried write), anything else means it was lost.
* **release**: the holder is cleared and ``renewTime`` set to now; the object stays (a
  ``get, create, update`` Role is enough, and the time of release tells the takeover scan that
  the workspace was let go cleanly, not abandoned: :mod:`bot.replicas.coordination`).

Times are ``MicroTime``: RFC 3339 in UTC with exactly six fractional digits, as the API server
writes and parses them. The clock is injected (tests move it instead of sleeping). Expiry is
judged on this replica's clock against the holder's ``renewTime``: replicas' clocks are assumed
within a fraction of the lease duration of each other (NTP), as client-go assumes.
"""

from __future__ import annotations

import dataclasses
import datetime
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from bot.cluster.kube import Kind, KubeApi

log = logging.getLogger(__name__)

__all__ = ["LEASE_KIND", "LeaseState", "Leases", "format_micro", "parse_micro"]

LEASE_KIND = Kind("coordination.k8s.io/v1", "Lease", "leases")

_MICRO = "%Y-%m-%dT%H:%M:%S.%fZ"


def format_micro(t: float) -> str:
    """A ``MicroTime`` as the API server wants it: ``2026-11-30T01:42:00.123456Z``."""
    return datetime.datetime.fromtimestamp(t, datetime.UTC).strftime(_MICRO)


def parse_micro(text: str | None) -> float | None:
    """Seconds since the epoch of a ``MicroTime`` (or RFC 3339 without fractions); None if absent."""
    if not text:
        return None
    text = text.replace("Z", "+00:00")
    return datetime.datetime.fromisoformat(text).timestamp()


@dataclasses.dataclass(frozen=True)
class LeaseState:
    """What a Lease says (as read)."""

    holder: str | None
    renewed: float | None  # renewTime, epoch seconds
    duration: float
    transitions: int
    resource_version: str

    def expired(self, now: float) -> bool:
        return self.renewed is None or self.renewed + self.duration < now

    def free(self, now: float) -> bool:
        """Nobody holds it: no holder, or the holder stopped renewing."""
        return not self.holder or self.expired(now)

    @classmethod
    def of(cls, obj: dict[str, Any]) -> LeaseState:
        spec = obj.get("spec") or {}
        return cls(holder=spec.get("holderIdentity") or None, renewed=parse_micro(spec.get("renewTime")),
                   duration=float(spec.get("leaseDurationSeconds") or 0),
                   transitions=int(spec.get("leaseTransitions") or 0),
                   resource_version=str(obj["metadata"]["resourceVersion"]))


class Leases:
    """Lease verbs for one holder identity (``DEVENV_REPLICA_ID``) in one namespace."""

    def __init__(self, api: KubeApi, holder: str, duration: float, *,
                 clock: Callable[[], float] = time.time, labels: dict[str, str] | None = None) -> None:
        self.api = api
        self.holder = holder
        self.duration = duration
        self.clock = clock
        self.labels = labels if labels is not None else {"app.kubernetes.io/managed-by": "devenv-bot"}
        self._held: dict[str, dict[str, Any]] = {}  # name -> the object as we last wrote it

    def holds(self, name: str) -> bool:
        """Did this replica hold ``name`` at its last successful write (not a fresh check)?"""
        return name in self._held

    def _spec(self, now: float, acquired: float, transitions: int) -> dict[str, Any]:
        return {"holderIdentity": self.holder, "leaseDurationSeconds": max(1, round(self.duration)),
                "acquireTime": format_micro(acquired), "renewTime": format_micro(now),
                "leaseTransitions": transitions}

    async def read(self, name: str) -> LeaseState | None:
        obj = await self.api.get(LEASE_KIND, name)
        return None if obj is None else LeaseState.of(obj)

    async def try_acquire(self, name: str) -> bool:
        """Take ``name`` if it is absent, free, expired or ours; False when another holds it fresh or
        another replica won the race for it."""
        now = self.clock()
        body = {"apiVersion": LEASE_KIND.api_version, "kind": LEASE_KIND.kind,
                "metadata": {"name": name, "labels": dict(self.labels)}, "spec": self._spec(now, now, 0)}
        if await self.api.create(LEASE_KIND, body):
            return await self._remember(name)
        current = await self.api.get(LEASE_KIND, name)
        if current is None:  # deleted between the create and the read: next time
            return False
        state = LeaseState.of(current)
        if state.holder == self.holder:
            return await self._write(name, current, self._spec(now, self._acquired(current, now), state.transitions))
        if not state.free(now):
            return False
        transitions = state.transitions + (1 if state.holder else 0)
        if state.holder:
            log.warning("lease %s: taking it over from %s (not renewed for %.0f s)", name, state.holder,
                        now - (state.renewed or 0))
        return await self._write(name, current, self._spec(now, now, transitions))

    @staticmethod
    def _acquired(obj: dict[str, Any], default: float) -> float:
        return parse_micro((obj.get("spec") or {}).get("acquireTime")) or default

    async def _write(self, name: str, current: dict[str, Any], spec: dict[str, Any]) -> bool:
        body = {**current, "spec": spec}
        if not await self.api.replace(LEASE_KIND, name, body):
            self._held.pop(name, None)
            return False  # someone else wrote it since we read it: they won
        return await self._remember(name)

    async def _remember(self, name: str) -> bool:
        obj = await self.api.get(LEASE_KIND, name)
        if obj is None or (obj.get("spec") or {}).get("holderIdentity") != self.holder:
            self._held.pop(name, None)
            return False
        self._held[name] = obj
        return True

    async def renew(self, name: str) -> bool:
        """Push ``renewTime`` forward; False when the Lease is no longer ours (taken over, deleted)."""
        now = self.clock()
        current = self._held.get(name)
        if current is None:
            current = await self.api.get(LEASE_KIND, name)
            if current is None:
                return False
        state = LeaseState.of(current)
        spec = self._spec(now, self._acquired(current, now), state.transitions)
        if state.holder == self.holder and await self.api.replace(LEASE_KIND, name, {**current, "spec": spec}):
            return await self._remember(name)
        fresh = await self.api.get(LEASE_KIND, name)  # our copy was stale: still ours?
        if fresh is None or LeaseState.of(fresh).holder != self.holder:
            self._held.pop(name, None)
            return False
        return await self._write(name, fresh, spec)

    async def release(self, name: str) -> None:
        """Let ``name`` go (when it is still ours): clear the holder, ``renewTime`` = now."""
        current = self._held.pop(name, None) or await self.api.get(LEASE_KIND, name)
        if current is None or LeaseState.of(current).holder != self.holder:
            return
        spec = {**(current.get("spec") or {}), "renewTime": format_micro(self.clock())}
        spec.pop("holderIdentity", None)
        if not await self.api.replace(LEASE_KIND, name, {**current, "spec": spec}):
            fresh = await self.api.get(LEASE_KIND, name)
            if fresh is not None and LeaseState.of(fresh).holder == self.holder:
                await self.api.replace(LEASE_KIND, name, {**fresh, "spec": spec})


async def keep_renewed(leases: Leases, name: str, *, every: float, sleep: Callable[[float], Awaitable[Any]],
                       on_lost: Callable[[], None], after: Callable[[], None] | None = None) -> None:
    """Renew ``name`` every ``every`` seconds until cancelled, taking it back if it was lost. ``on_lost`` runs
    once when it is lost (not again until it was held again); ``after`` runs after every renewal that was
    tried. A failed renewal request is logged and tried again at the next round."""
    lost = False
    while True:
        await sleep(every)
        try:
            ok = await leases.renew(name) or await leases.try_acquire(name)
        except Exception as exc:
            log.warning("renewing lease %s failed (%s); trying again", name, exc)
            continue
        if not ok and not lost:
            on_lost()
        lost = not ok
        if after is not None:
            try:
                after()
            except Exception:
                log.exception("the round after renewing lease %s failed; again next round", name)
