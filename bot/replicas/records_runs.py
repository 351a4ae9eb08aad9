"""The agent runs' ledger in the cluster: ``spec.agentRuns`` of the workspace's DevEnvironment.

With ``DEVENV_STATE_BACKEND=kubernetes`` this replaces :class:`bot.agent.ledger.Ledger` (one file
per run), with the same verbs (``save``, ``forget``, ``load_all``). Why in the DevEnvironment and
not a kind of its own: a run belongs to one environment and lives no longer than it (a delete ends
the run first); one object per workspace means no second CRD, Role or poll, and an operator sees
the runs with the record (``kubectl get devenv <id> -o yaml``). The entry is exactly what the file
holds (no prompt, no token), under ``spec.agentRuns.<run id>`` as ``{replica, entry}``.

Each change is a read-modify-write at the object's ``resourceVersion``, retried on a conflict; the
records store (:mod:`bot.replicas.records`) keeps ``agentRuns`` as it finds them, and its next
write meets the new version and merges, so neither loses the other's write.

Which runs a start-up recovers: those of this replica and those of replicas ``alive`` says are gone.
``alive`` defaults to "no other replica is": the run service then spares the runs whose agent Lease
another replica holds fresh (:mod:`bot.replicas.agents`), which is what says a run is still going.

Ending a run another replica runs: :meth:`ClusterRunLedger.request_end` marks its item, with ``end``
(a stop, rebuild or delete: the operation's kind, who asked, the command) or ``stop`` (``/devenv agent
stop``: who asked, their comment); the replica running it reads the marks with
:meth:`ClusterRunLedger.end_request` after each renewal of the run's Lease, and ends the run. A
:meth:`save` keeps the marks.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, Generic, Protocol, TypeVar

from bot.cluster.kube import path
from bot.replicas.records import CONFLICTS, KIND, SET_ASIDE_LABEL, ClusterRecords, StoreError, plain

log = logging.getLogger(__name__)

__all__ = ["MARKS", "ClusterRunLedger"]

#: The requests another replica may leave on a run's item (see the module docstring).
MARKS = ("end", "stop")


class Entry(Protocol):
    run_id: str
    ws_id: str

    def to_json(self) -> dict[str, Any]: ...


E = TypeVar("E", bound=Entry)


class ClusterRunLedger(Generic[E]):
    """The runs not finished with, kept in their environments' objects (see the module docstring)."""

    def __init__(self, records: ClusterRecords[Any], parse: Callable[[dict[str, Any]], E], *,
                 alive: Callable[[str], bool] = lambda replica: False) -> None:
        self.records = records
        self.parse = parse
        self.alive = alive
        self._where: dict[str, str] = {}  # run id -> ws id

    @property
    def replica(self) -> str:
        return self.records.replica

    def _change(self, ws_id: str, change: Callable[[dict[str, Any]], bool]) -> bool:
        """Apply ``change`` to the object's ``spec.agentRuns`` and write it; False when there is no object."""
        where = path(KIND, self.records.namespace, ws_id)
        for _ in range(CONFLICTS):
            status, obj = self.records.request("GET", where)
            if status == 404:
                return False
            if status != 200:
                raise StoreError(f"GET {where}: {status} {obj.get('message', '')}")
            runs = obj.setdefault("spec", {}).setdefault("agentRuns", {})
            if not change(runs):
                return True
            status, answer = self.records.request("PUT", where, obj)
            if 200 <= status < 300 or status == 404:
                return status != 404
            if status != 409:
                raise StoreError(f"PUT {where}: {status} {answer.get('message', '')}")
        raise StoreError(f"DevEnvironment {ws_id}: the agent run's write still conflicts after {CONFLICTS} tries")

    def save(self, entry: E) -> None:
        item = {"replica": self.replica, "entry": plain(entry.to_json())}

        def put(runs: dict[str, Any]) -> bool:
            old = runs.get(entry.run_id)
            marks = {k: v for k, v in old.items() if k in MARKS} if isinstance(old, dict) else {}
            runs[entry.run_id] = {**marks, **item}
            return True

        self._where[entry.run_id] = entry.ws_id
        if not self._change(entry.ws_id, put):
            log.error("agent run %s: environment %s has no DevEnvironment; the run is not journalled",
                      entry.run_id, entry.ws_id)

    def forget(self, run_id: str) -> None:
        ws_id = self._where.pop(run_id, None)
        if ws_id is None:
            ws_id = next((w for w, r, _ in self._all() if r == run_id), None)
        if ws_id is not None:
            self._change(ws_id, lambda runs: runs.pop(run_id, None) is not None)

    def items_of(self, ws_id: str) -> dict[str, dict[str, Any]]:
        """{run id: {replica, entry, end?}} of the runs journalled on ``ws_id`` (one read)."""
        status, obj = self.records.request("GET", path(KIND, self.records.namespace, ws_id))
        if status == 404:
            return {}
        if status != 200:
            raise StoreError(f"GET DevEnvironment {ws_id}: {status} {obj.get('message', '')}")
        runs = (obj.get("spec") or {}).get("agentRuns") or {}
        return {k: v for k, v in runs.items() if isinstance(v, dict)}

    def request_end(self, ws_id: str, run_id: str, why: dict[str, Any], mark: str = "end") -> bool:
        """Ask the replica running ``run_id`` to end it (``mark``: one of :data:`MARKS`); False: no such run."""
        found = False

        def put(runs: dict[str, Any]) -> bool:
            nonlocal found
            item = runs.get(run_id)
            found = isinstance(item, dict)
            if isinstance(item, dict):
                item[mark] = plain(why)
            return found

        return self._change(ws_id, put) and found

    def end_request(self, ws_id: str, run_id: str) -> dict[str, dict[str, Any]]:
        """The marks other replicas left on ``run_id`` ({mark: why}; empty: none)."""
        item = self.items_of(ws_id).get(run_id, {})
        return {k: v for k, v in item.items() if k in MARKS and isinstance(v, dict)}

    def _all(self) -> list[tuple[str, str, dict[str, Any]]]:
        """(ws id, run id, {replica, entry}) of every run in the namespace."""
        status, listing = self.records.request("GET", path(KIND, self.records.namespace))
        if status != 200:
            raise StoreError(f"listing DevEnvironments: {status} {listing.get('message', '')}")
        found = []
        for obj in listing.get("items") or []:
            meta = obj.get("metadata") or {}
            if (meta.get("labels") or {}).get(SET_ASIDE_LABEL) == "true":
                continue
            for run_id, item in ((obj.get("spec") or {}).get("agentRuns") or {}).items():
                found.append((meta.get("name", ""), run_id, item if isinstance(item, dict) else {}))
        return found

    def load_all(self) -> list[E]:
        """The runs this replica must finish with: its own, and those of replicas that are gone."""
        entries = []
        for ws_id, run_id, item in self._all():
            replica = str(item.get("replica") or "")
            if replica != self.replica and self.alive(replica):
                continue
            try:
                entry = self.parse(dict(item["entry"]))
            except (ValueError, TypeError, KeyError, AttributeError) as exc:
                log.error("agent run %s in DevEnvironment %s cannot be read (%s); its `devenv agent` check run, "
                          "if any, stays as it is", run_id, ws_id, exc)
                continue
            self._where[entry.run_id] = ws_id
            entries.append(entry)
        return entries
