"""Which deliveries were acted on, agreed among replicas: a create-once marker per delivery.

The semantics are :mod:`bot.core.deliveries`' (in flight, then handled; a failed or cut-short
delivery is acted on again when redelivered), kept in the cluster instead of one process:

* :meth:`ClusterDeliveries.claim` creates the marker ``devenv-delivery-<hash of the id>``
  (:mod:`bot.replicas.onceonly`) holding ``state=in-flight``, this replica's id and the time. The
  replica whose create succeeds acts on it; every other one gets 409 and answers "duplicate".
* :meth:`ClusterDeliveries.done` marks it ``handled``, or deletes the marker when a handler failed,
  so a redelivery to any replica is acted on again.
* A delivery no handler wants gets no marker: acting on it twice does nothing (a redelivery of it is
  answered "no handler" rather than "duplicate").
* An ``in-flight`` marker older than ``stale_after`` is one whose replica died (or was cut off)
  before :meth:`done`: a redelivery takes it over (a replace with its ``resourceVersion``, so two
  replicas taking it over at once cannot both win). Handlers only queue work, so a real delivery is
  in flight for seconds; the default of 10 minutes is generous.
* Bounded: every ``sweep_every`` claims (at the next :meth:`done`, off the request's path),
  markers older than ``retention`` go (3 days by default: GitHub offers redelivery of the last 3
  days), then the oldest beyond ``capacity`` (``DEVENV_DELIVERY_CACHE_SIZE``). So about
  ``capacity + sweep_every`` markers exist at most.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from bot.cluster.kube import KubeApi
from bot.replicas.onceonly import Markers

log = logging.getLogger(__name__)

__all__ = ["ClusterDeliveries"]

IN_FLIGHT, HANDLED = "in-flight", "handled"


def _since(data: dict[str, str]) -> float:
    try:
        return float(data.get("since", ""))
    except ValueError:
        return 0.0


class ClusterDeliveries:
    """:class:`bot.core.deliveries.Deliveries` for several replicas (see the module docstring)."""

    def __init__(self, api: KubeApi, replica_id: str, *, clock: Callable[[], float] = time.time,
                 stale_after: float = 600.0, retention: float = 3 * 86400.0, capacity: int = 10_000,
                 sweep_every: int = 100) -> None:
        self.markers = Markers(api, "delivery")
        self.replica_id, self.clock = replica_id, clock
        self.stale_after, self.retention, self.capacity = stale_after, retention, capacity
        self.sweep_every = max(1, sweep_every)
        self._claims = 0
        self._swept_at = 0  # claims counted at the last sweep

    def _data(self, state: str) -> dict[str, str]:
        return {"state": state, "replica": self.replica_id, "since": f"{self.clock():.3f}"}

    async def claim(self, delivery_id: str, *, run: bool) -> bool:
        if not run:  # no handler wants it: nothing to do twice, so no marker (and no write) for it
            return True
        self._claims += 1
        data = self._data(IN_FLIGHT)
        for _ in range(2):  # once more if the marker went between the create and the read
            if await self.markers.create(delivery_id, data):
                return True
            current = await self.markers.get(delivery_id)
            if current is None:
                continue
            held = current.get("data") or {}
            if held.get("state") != IN_FLIGHT or self.clock() - _since(held) < self.stale_after:
                return False
            if await self.markers.replace(current, data):  # its replica died mid-way: take it over
                log.warning("delivery %s was in flight on replica %s since %.0fs ago; acting on it here",
                            delivery_id[:64], held.get("replica", "?")[:64], self.clock() - _since(held))
                return True
            return False  # another replica took it over first
        return False

    async def done(self, delivery_id: str, *, handled: bool) -> None:
        if self._claims - self._swept_at >= self.sweep_every:  # here, off the webhook request's path
            self._swept_at = self._claims
            await self.sweep()
        try:
            if not handled:
                await self.markers.delete(delivery_id)
                return
            current = await self.markers.get(delivery_id)
            if current is None or not await self.markers.replace(current, self._data(HANDLED)):
                log.warning("delivery %s: its marker changed under this replica; left as it is", delivery_id[:64])
        except Exception as exc:  # an in-flight marker left behind goes stale: a redelivery is then acted on
            log.error("delivery %s: could not record how it ended (%s)", delivery_id[:64], exc.__class__.__name__)

    async def sweep(self) -> int:
        """Delete markers older than ``retention`` (and stale in-flight ones), then the oldest beyond ``capacity``."""
        now = self.clock()

        def keep(data: dict[str, str]) -> bool:
            age = now - _since(data)
            return age < self.retention and not (data.get("state") == IN_FLIGHT and age >= self.stale_after)

        return await self.markers.sweep(keep, capacity=self.capacity, age=lambda data: -_since(data))

    def close(self) -> None:
        return None
