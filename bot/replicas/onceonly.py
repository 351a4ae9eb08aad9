"""Create-once markers in the cluster: what lets replicas agree that something happened once.

A marker is a ConfigMap ``devenv-<purpose>-<sha256 of the key>`` in the bot's namespace, labelled
``devenv.dev/marker=<purpose>``, its few fields in ``data``. Creating it is the claim: the API
server answers 409 AlreadyExists to every replica but the first, which is what makes a one-time
sign-in code single-use (:class:`ClusterUsedCodes`) and a delivery acted on once
(:mod:`bot.replicas.deliveries`). Markers hold no secret: the key is hashed into the name.

Markers are bounded: :meth:`Markers.sweep` lists those of one purpose and deletes the ones the caller
no longer needs, then the oldest beyond ``capacity``; callers sweep every so many claims.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable
from typing import Any

from bot.cluster.kube import Kind, KubeApi

log = logging.getLogger(__name__)

__all__ = ["CONFIGMAP", "ClusterUsedCodes", "Markers"]

CONFIGMAP = Kind("v1", "ConfigMap", "configmaps")
LABEL = "devenv.dev/marker"


class Markers:
    """The create-once markers of one ``purpose`` (a DNS label such as ``delivery``)."""

    def __init__(self, api: KubeApi, purpose: str) -> None:
        self.api, self.purpose = api, purpose

    def name(self, key: str) -> str:
        return f"devenv-{self.purpose}-{hashlib.sha256(key.encode()).hexdigest()[:40]}"

    async def create(self, key: str, data: dict[str, str]) -> bool:
        """True: this call made the marker; False: it already existed (someone else claimed it)."""
        return await self.api.create(CONFIGMAP, {
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": self.name(key), "labels": {LABEL: self.purpose}}, "data": data})

    async def get(self, key: str) -> dict[str, Any] | None:
        return await self.api.get(CONFIGMAP, self.name(key))

    async def replace(self, current: dict[str, Any], data: dict[str, str]) -> bool:
        """Rewrite ``current``'s data if nobody changed it since it was read (False: someone did, or it is gone)."""
        name = current["metadata"]["name"]
        body = {"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": name, "labels": {LABEL: self.purpose},
                             "resourceVersion": current["metadata"]["resourceVersion"]}, "data": data}
        return await self.api.replace(CONFIGMAP, name, body)

    async def delete(self, key: str) -> bool:
        return await self.api.delete(CONFIGMAP, self.name(key))

    async def sweep(self, keep: Callable[[dict[str, str]], bool], *, capacity: int | None,
                    age: Callable[[dict[str, str]], float]) -> int:
        """Delete the markers ``keep`` says are done with, then the oldest (by ``age``, larger is
        older) beyond ``capacity``. Returns how many went; errors are logged, not raised."""
        try:
            items = await self.api.list(CONFIGMAP, f"{LABEL}={self.purpose}")
        except Exception as exc:
            log.warning("could not list the %s markers to clean them up: %s", self.purpose, exc.__class__.__name__)
            return 0
        kept = [i for i in items if keep(i.get("data") or {})]
        gone = [i for i in items if not keep(i.get("data") or {})]
        kept.sort(key=lambda i: age(i.get("data") or {}))
        gone += kept[capacity:] if capacity is not None else []
        deleted = 0
        for item in gone:
            try:
                deleted += await self.api.delete(CONFIGMAP, item["metadata"]["name"])
            except Exception as exc:
                log.warning("could not delete marker %s: %s", item["metadata"]["name"], exc.__class__.__name__)
        return deleted


def _number(data: dict[str, str], key: str) -> float:
    try:
        return float(data.get(key, ""))
    except ValueError:
        return 0.0


class ClusterUsedCodes:
    """One-time sign-in codes, used once whichever replica redeems them (see :mod:`bot.access.sessions`).

    A code's marker lives until the code expires, and no longer: every ``sweep_every`` uses, expired
    markers go. None is removed earlier (its code would become usable again), so they number at most
    the codes issued in one code lifetime (``DEVENV_HANDOFF_TTL``)."""

    def __init__(self, api: KubeApi, *, clock: Callable[[], float] = time.time, sweep_every: int = 50) -> None:
        self.markers = Markers(api, "handoff")
        self.clock, self.sweep_every = clock, sweep_every
        self._uses = 0

    async def first_use(self, key: str, expires: float) -> bool:
        """True the first time ``key`` is used on any replica; raises when the cluster cannot tell."""
        first = await self.markers.create(key, {"expires": str(int(expires) + 1)})
        self._uses += 1
        if self._uses % self.sweep_every == 0:
            now = self.clock()
            await self.markers.sweep(lambda data: _number(data, "expires") > now, capacity=None,
                                     age=lambda data: -_number(data, "expires"))
        return first
