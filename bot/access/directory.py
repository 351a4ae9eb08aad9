"""What a workspace id in a preview host points at: the pull request, the permission a port needs,
the environment's state, and a note that someone used it.

The access checks see environments only through :class:`WorkspaceDirectory`; the bot backs it
with the environment manager's records (:class:`EnvironmentDirectory`), tests with dicts
(:class:`DictDirectory`). With several replicas, a workspace this replica does not hold yet (another
made it since this one last listed the records) is read from the cluster before it is called unknown.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple, Protocol

from bot.environments.states import State, is_starting, is_stopped

log = logging.getLogger(__name__)

__all__ = ["STARTING_STATES", "STOPPED_STATES", "DictDirectory", "EnvironmentDirectory", "Workspace",
           "WorkspaceDirectory", "workspace_state"]


class Workspace(NamedTuple):
    installation_id: int
    owner: str
    repo: str
    number: int


class WorkspaceDirectory(Protocol):
    """What the access checks need to know about environments (the lead backs it with the manager)."""

    def lookup(self, ws_id: str) -> Workspace | tuple[int, str, str, int] | None:
        """The PR a workspace belongs to, or None if there is no such (live) workspace."""

    def port_permission(self, ws_id: str, port: str) -> str | None:
        """The permission a port needs (read … admin), or None for the default."""

    def record_activity(self, ws_id: str, when: float, source: str = "preview") -> None:
        """Someone allowed just used the workspace through ``source`` (``ide`` or ``preview``; for
        idle stop).  Must be cheap."""

    # Optional: ``state(ws_id) -> str | None``, the environment's state (``running``, ``stopped`` …);
    # without it every known workspace counts as running.


#: States in which the workspace pod is not there to answer: the check shows a page instead of a 502.
STOPPED_STATES = frozenset(s for s in State if is_stopped(s))
STARTING_STATES = frozenset(s for s in State if is_starting(s))


def workspace_state(directory: WorkspaceDirectory, ws_id: str) -> str | None:
    state = getattr(directory, "state", None)
    return state(ws_id) if callable(state) else None


class DictDirectory:
    """A directory held in dicts: for tests, and as the shape of the real one."""

    def __init__(self, workspaces: Mapping[str, Workspace] | None = None,
                 ports: Mapping[tuple[str, str], str] | None = None) -> None:
        self.workspaces: dict[str, Workspace] = dict(workspaces or {})
        self.ports: dict[tuple[str, str], str] = dict(ports or {})
        self.states: dict[str, str] = {}
        self.activity: dict[str, float] = {}
        self.sources: dict[str, str] = {}

    def lookup(self, ws_id: str) -> Workspace | None:
        return self.workspaces.get(ws_id)

    def port_permission(self, ws_id: str, port: str) -> str | None:
        return self.ports.get((ws_id, port))

    def state(self, ws_id: str) -> str | None:
        return self.states.get(ws_id)

    def record_activity(self, ws_id: str, when: float, source: str = "preview") -> None:
        self.activity[ws_id] = when
        self.sources[ws_id] = source


class EnvironmentDirectory:
    """The directory backed by ``EnvironmentManager.records``; ``ports(ws_id, port)`` gives overrides.

    A use is noted in the manager's :class:`~bot.environments.activity.Activity` (what the idle
    reaper reads)."""

    def __init__(self, manager: Any, ports: Callable[[str, str], str | None] | None = None) -> None:
        self.manager = manager
        self.ports = ports

    def lookup(self, ws_id: str) -> Workspace | None:
        record = self.manager.records.get(ws_id)
        if record is None:  # replicas: another one may have made it since this one last listed the records
            try:
                record = self.manager.store.refresh(ws_id)  # the file backend: no I/O
            except Exception as exc:
                log.warning("could not read the record of %s: %s", ws_id, exc.__class__.__name__)
                return None
        if record is None or record.state == State.DELETED:
            return None
        return Workspace(record.installation_id, record.owner, record.repo, record.number)

    def port_permission(self, ws_id: str, port: str) -> str | None:
        return self.ports(ws_id, port) if self.ports is not None else None

    def state(self, ws_id: str) -> str | None:
        record = self.manager.records.get(ws_id)
        return record.state if record is not None else None

    def record_activity(self, ws_id: str, when: float, source: str = "preview") -> None:
        self.manager.activity.note(ws_id, source, when)
