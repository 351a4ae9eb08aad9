"""Environment records as ``DevEnvironment`` custom resources: the journal of several replicas.

With ``DEVENV_STATE_BACKEND=kubernetes`` this replaces the file journal
(:class:`bot.environments.journal.Journal`) behind :class:`~bot.environments.journal.Records`, with
the same verbs (``save``, ``load_all``, ``load``, ``forget``, ``set_aside``). One object per
workspace, named by its id, in the bot's own namespace (deploy/base/devenvironments.yaml):
``spec.record`` is the record's JSON, ``spec.repository``/``pr``/``state``/``head`` copies of it for
``kubectl get devenvironments``, ``spec.replica`` the replica that wrote it last. Other parts of
``spec`` (``agentRuns``, :mod:`bot.replicas.records_runs`) are carried over untouched.

Design.

* **Synchronous, write-through.** ``save`` returns once the API server has the record, like the
  file journal's fsynced rename: the crash-recovery design depends on it (an operation's end is
  journalled before GitHub is told). The calls run on the caller's thread (the event loop's), one
  round trip each, bounded by ``request_timeout``; temporary errors (5xx, 429, connection errors)
  are retried ``retries`` times after a short pause. Every caller of the journal is synchronous
  (records are changed and saved without an ``await`` in between), which this keeps true.
* **Optimistic concurrency, no lost write.** Every write is a PUT at the ``resourceVersion`` last
  seen (a POST for a new object). Per workspace the store keeps the *base*: the object as it last
  read or wrote it. On 409 Conflict (another replica wrote since) it reads the object again,
  re-applies only what this replica changed since the base (:func:`records_merge.merge3`: field by
  field; history and pending operations as sets), updates the caller's record in place to the
  merged result and tries again. A POST that meets an existing object (two replicas created the
  same record) merges the same way from an empty base. A PUT that meets a deleted object creates it
  again, as a save after ``forget`` writes the file again in the file journal.
* **Unreadable objects are set aside, never overwritten.** An object whose record does not parse
  is copied to ``<name>.set-aside-<resourceVersion>`` (labelled ``devenv-bot.dev/set-aside``) and
  removed, as the file journal renames ``<id>.json`` to ``<id>.corrupt``: the bot stops tracking
  the workspace (and never takes its links for orphans) until the operator acts.

The ``kubernetes`` client is imported by the caller that makes the ``ApiClient``
(:func:`bot.cluster.kube.kube_api_client`); this module only uses the client it is given.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Generic, Protocol, TypeVar

from urllib3.exceptions import HTTPError

from bot.cluster.kube import Kind, path
from bot.core.tasks import SHUTDOWN
from bot.replicas.records_merge import assign, merge3

log = logging.getLogger(__name__)

__all__ = ["KIND", "SET_ASIDE_LABEL", "ClusterRecords", "StoreError"]

#: The custom resource (deploy/base/devenvironments.yaml).
KIND = Kind("devenv-bot.dev/v1alpha1", "DevEnvironment", "devenvironments")
#: Objects set aside carry this label; their workspace id is in :data:`WORKSPACE_ANNOTATION`.
SET_ASIDE_LABEL = "devenv-bot.dev/set-aside"
WORKSPACE_ANNOTATION = "devenv-bot.dev/workspace"
#: How many conflicts in a row one save merges before it gives up (each means another replica wrote).
CONFLICTS = 8
#: The parts of ``spec`` the records store writes; the rest belongs to others and is kept.
RECORD_VIEW = ("repository", "pr", "state", "head", "replica", "record")
_UNREADABLE = (ValueError, TypeError, KeyError, AttributeError)


class StoreError(Exception):
    """The API server answered something the store cannot go on from (the message says what)."""


class Stored(Protocol):
    """What the store can keep: a dataclass with a workspace id and a JSON form."""

    ws_id: str

    def to_json(self) -> dict[str, Any]: ...


R = TypeVar("R", bound=Stored)


@dataclasses.dataclass
class Base:
    """The object as this replica last read or wrote it."""

    resource_version: str
    spec: dict[str, Any]

    @property
    def record(self) -> dict[str, Any]:
        return dict(self.spec.get("record") or {})


def plain(data: Any) -> Any:
    """``data`` as JSON gives it back (enums as their strings), so comparisons with what was read hold."""
    return json.loads(json.dumps(data))


class ClusterRecords(Generic[R]):
    """The records of one namespace, written with optimistic concurrency (see the module docstring).

    ``parse`` makes a record from its JSON (raising ``ValueError``/``TypeError``/``KeyError`` when it
    cannot); ``lists`` and ``limits`` say which fields are merged as sets and how long they may grow;
    ``identity`` names the fields a new record is made from (the rest at their defaults is the base
    of a merge when two replicas create one record at once).
    """

    #: Other processes write here too: :meth:`Records.refresh` must read before deciding.
    shared = True

    def __init__(self, api_client: Any, namespace: str, parse: Callable[[dict[str, Any]], R], *,
                 replica: str = "", lists: Sequence[str] = (), limits: Mapping[str, int] | None = None,
                 identity: Sequence[str] = (),
                 request_timeout: float = 10.0, retries: int = 2, backoff: float = 0.2,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.client = api_client
        self.namespace = namespace
        self.parse = parse
        self.replica = replica
        self.lists, self.limits, self.identity = tuple(lists), dict(limits or {}), tuple(identity)
        self._timeout, self._retries, self._backoff, self._sleep = request_timeout, retries, backoff, sleep
        self._base: dict[str, Base] = {}
        self._changed: dict[str, bool] = {}  # ws id -> did the last read find another version than the one before
        self._aside: set[str] = set()

    # ------------------------------------------------------------------ HTTP
    def _once(self, method: str, url_path: str, body: Any) -> tuple[int, dict[str, Any]]:
        headers = {"Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = "application/json"
        method, url, headers, body, _ = self.client.param_serialize(
            method, url_path, query_params=[], header_params=headers, body=body, auth_settings=["BearerToken"])
        left = SHUTDOWN.remaining()  # once stopping, a call gets at most the grace that is left
        timeout = self._timeout if left is None else max(0.1, min(self._timeout, left))
        resp = self.client.call_api(method, url, headers, body, _request_timeout=timeout)
        resp.read()
        try:
            data = json.loads(resp.data or b"{}")
        except ValueError:
            data = {"message": resp.data.decode("utf-8", "replace")[:200]}
        return resp.status, data if isinstance(data, dict) else {}

    def request(self, method: str, url_path: str, body: Any = None) -> tuple[int, dict[str, Any]]:
        """One call, retried while the error is temporary: (HTTP status, decoded answer)."""
        delay = self._backoff
        for attempt in range(self._retries + 1):
            last = attempt == self._retries or SHUTDOWN.remaining() is not None  # no retries while stopping
            try:
                status, data = self._once(method, url_path, body)
            except HTTPError as e:
                if last:
                    raise StoreError(f"{method} {url_path}: {e}") from e
                log.warning("kubernetes %s %s: %s, retrying", method, url_path, e)
            else:
                if not (status == 429 or status >= 500) or last:
                    return status, data
                log.warning("kubernetes %s %s: %s, retrying", method, url_path, status)
            self._sleep(delay)
            delay *= 2
        raise AssertionError("unreachable")  # pragma: no cover

    def _expect(self, method: str, url_path: str, body: Any, ok: tuple[int, ...]) -> tuple[int, dict[str, Any]]:
        status, data = self.request(method, url_path, body)
        if status not in ok and not 200 <= status < 300:
            raise StoreError(f"{method} {url_path}: {status} {data.get('reason', '')} {data.get('message', '')}")
        return status, data

    # ------------------------------------------------------------------ objects
    def _body(self, ws_id: str, data: dict[str, Any], base: Base | None) -> dict[str, Any]:
        spec = {k: v for k, v in (base.spec if base else {}).items() if k not in RECORD_VIEW}
        spec.update(repository=f"{data.get('owner')}/{data.get('repo')}", pr=data.get("number"),
                    state=data.get("state"), head=str(data.get("head_sha") or "")[:12], record=data)
        if self.replica:
            spec["replica"] = self.replica
        metadata: dict[str, Any] = {"name": ws_id, "namespace": self.namespace}
        if base is not None:
            metadata["resourceVersion"] = base.resource_version
        return {"apiVersion": KIND.api_version, "kind": KIND.kind, "metadata": metadata, "spec": spec}

    def _remember(self, obj: dict[str, Any]) -> Base:
        base = Base(obj["metadata"]["resourceVersion"], copy.deepcopy(obj.get("spec") or {}))
        before = self._base.get(obj["metadata"]["name"])
        self._changed[obj["metadata"]["name"]] = before is None or before.resource_version != base.resource_version
        self._base[obj["metadata"]["name"]] = base
        return base

    def _read(self, ws_id: str) -> dict[str, Any] | None:
        status, obj = self._expect("GET", path(KIND, self.namespace, ws_id), None, (404,))
        return None if status == 404 else obj

    def _parsed(self, obj: dict[str, Any]) -> R | None:
        """The object's record, remembered as the base; None (and set aside) when it cannot be read."""
        try:
            record = self.parse(copy.deepcopy((obj.get("spec") or {})["record"]))
        except _UNREADABLE as exc:
            self._set_aside(obj, exc)
            return None
        self._remember(obj)
        return record

    def _set_aside(self, obj: dict[str, Any], exc: Exception) -> None:
        meta = obj["metadata"]
        ws_id, rv = meta["name"], meta["resourceVersion"]
        self._base.pop(ws_id, None)
        self._aside.add(ws_id)
        aside = f"{ws_id}.set-aside-{rv}"
        copied = {"apiVersion": KIND.api_version, "kind": KIND.kind, "spec": obj.get("spec") or {},
                  "metadata": {"name": aside, "namespace": self.namespace, "labels": {SET_ASIDE_LABEL: "true"},
                               "annotations": {WORKSPACE_ANNOTATION: ws_id}}}
        try:
            self._expect("POST", path(KIND, self.namespace), copied, (409,))
            self._expect("DELETE", path(KIND, self.namespace, ws_id), None, (404,))
        except StoreError as move_error:
            log.error("DevEnvironment %s cannot be read (%s) nor set aside (%s)", ws_id, exc, move_error)
            return
        log.error("DevEnvironment %s cannot be read (%s): set aside as %s", ws_id, exc, aside)

    # ------------------------------------------------------------------ the journal's verbs
    def changed(self, ws_id: str) -> bool:
        """Did the last read of the workspace's object find it changed (written by someone else) since
        this replica last read or wrote it? When not, the record held in memory is left as it is."""
        return self._changed.get(ws_id, True)

    def was_stored(self, ws_id: str) -> bool:
        """Has this replica read or written the workspace's object (so its absence now means deleted)?"""
        return ws_id in self._base

    def load(self, ws_id: str) -> R | None:
        """The record as the cluster holds it now; None when there is none (or it was set aside)."""
        obj = self._read(ws_id)
        if obj is None:
            self._base.pop(ws_id, None)
            return None
        return self._parsed(obj)

    def load_all(self) -> list[R]:
        """Every record of the namespace; the unreadable ones are set aside and logged."""
        _, listing = self._expect("GET", path(KIND, self.namespace), None, ())
        records, seen = [], set()
        for obj in listing.get("items") or []:
            meta = obj.get("metadata") or {}
            if (meta.get("labels") or {}).get(SET_ASIDE_LABEL) == "true":
                self._aside.add((meta.get("annotations") or {}).get(WORKSPACE_ANNOTATION, meta.get("name", "")))
                continue
            seen.add(meta["name"])
            record = self._parsed(obj)
            if record is not None:
                records.append(record)
        for ws_id in set(self._base) - seen:
            del self._base[ws_id]
        for ws_id in sorted(self._aside - {r.ws_id for r in records}):
            log.error("workspace %s is not tracked: its DevEnvironment could not be read and waits, set aside, in "
                      "`kubectl -n %s get devenvironments -l %s`. Its browser links and workspace are kept until you "
                      "act: fix it and create it again as %s, or `devpod delete %s` and delete it",
                      ws_id, self.namespace, SET_ASIDE_LABEL, ws_id, ws_id)
        return records

    def set_aside(self) -> list[str]:
        """The workspaces whose object could not be read and was set aside (never taken for orphans)."""
        return sorted(self._aside)

    def save(self, record: R) -> None:
        """Write the record (see the module docstring); on a conflict ``record`` is updated in place to
        the merged result, which is what the cluster then holds."""
        ws_id = record.ws_id
        data = plain(record.to_json())
        for _ in range(CONFLICTS):
            base = self._base.get(ws_id)
            if base is None:
                status, obj = self._expect("POST", path(KIND, self.namespace), self._body(ws_id, data, None), (409,))
            else:
                status, obj = self._expect("PUT", path(KIND, self.namespace, ws_id), self._body(ws_id, data, base),
                                           (404, 409))
            if 200 <= status < 300:
                self._remember(obj)
                return
            self._base.pop(ws_id, None)
            fresh = self._read(ws_id) if status == 409 else None
            if fresh is None:
                continue  # deleted meanwhile: create it again
            theirs = self._remember(fresh)
            merged = merge3(base.record if base is not None else self._blank(data), data, theirs.record,
                            lists=self.lists, limits=self.limits)
            log.info("DevEnvironment %s was written by another replica (%s): merging", ws_id,
                     theirs.spec.get("replica") or "unknown")
            assign(record, self.parse(copy.deepcopy(merged)))
            data = plain(record.to_json())
        raise StoreError(f"DevEnvironment {ws_id}: still conflicting after {CONFLICTS} merges")

    def _blank(self, data: dict[str, Any]) -> dict[str, Any]:
        """What a new record held before this replica changed it: its identity, the rest at defaults."""
        try:
            return dict(plain(self.parse({k: data[k] for k in self.identity if k in data}).to_json()))
        except _UNREADABLE:
            return {}

    def forget(self, ws_id: str) -> None:
        self._expect("DELETE", path(KIND, self.namespace, ws_id), None, (404,))
        self._base.pop(ws_id, None)
