"""The environment state machine: states, events, one transition table, and the questions asked of a state.

Pure data and pure functions; nothing here does I/O.  A record's ``state`` changes only through
:func:`transition`, which looks the ``(state, event)`` pair up in :data:`TABLE` and refuses a pair
that is not there (:class:`ImpossibleTransition`), so a path nobody thought of fails loudly instead
of leaving a record in a state that tells people something false.

How the table reads.  An operation (``up``, ``sync``, ``stop`` …) may start whatever the state:
the per-workspace queue runs operations one at a time, and handlers decide whether to ask.  So the
*start* of an operation, a status report, a time-out, a cancellation and an internal error are
allowed from every state; the *success* or *failure* of an operation only from the state its start
set.  The README draws the table (:func:`mermaid`; a test keeps the two equal): an event allowed
from every state with one target is drawn once, from the node ``any``.

The predicates below the table replace the state lists that handlers, the access checks, the agent
and the templates used to spell out by hand; each says which question it answers.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable


class State(enum.StrEnum):
    """What the sticky comment says about an environment (its words are in ``templates/comment.md.j2``)."""

    NONE = "none"  # no environment (yet): a new PR, an untrusted one waiting for approval, or one DevPod lost
    QUEUED = "queued"  # a build was asked for and waits for its turn (the queue, then a DevPod slot)
    CREATING = "creating"  # devpod up (or recreate, reset) runs
    UPDATING = "updating"  # a push is being followed: devpod up --reset runs
    RUNNING = "running"
    STOPPING = "stopping"
    STOPPED = "stopped"
    DELETING = "deleting"
    DELETED = "deleted"
    FAILED = "failed"


class Event(enum.Enum):
    """What happens to an environment; the value is the edge label in the README's graph."""

    QUEUED = "a build is asked for"
    BUILD_STARTED = "up, recreate or reset starts"
    SYNC_STARTED = "sync starts (a push, after a quiet moment)"
    STOP_STARTED = "stop starts"
    DELETE_STARTED = "delete starts"
    BUILT = "built (links exposed)"
    SYNC_BLOCKED = "push not applied (uncommitted changes)"
    HEAD_MOVED = "head moved since the approval"
    HEAD_MOVED_NO_ENV = "head moved since the approval (waits for approve)"
    STOPPED = "stopped"
    STOP_FAILED = "stop failed"
    DELETED = "deleted"
    FAILED = "DevPod failed"
    TIMED_OUT = "timed out"
    CANCELLED_FOR_DELETE = "build cancelled by a delete"
    CANCELLED = "build cancelled"
    INTERNAL_ERROR = "internal error"
    FOUND_RUNNING = "status says Running"
    FOUND_STOPPED = "status says Stopped"
    FOUND_NOT_FOUND = "status says NotFound"
    FOUND_MISSING = "status finds no workspace"


S, E = State, Event
#: Where a record starts, and the state after which a record is forgotten (if no work waits).
INITIAL = S.NONE
FINAL = S.DELETED


def _rows(sources: Iterable[State], event: Event, target: State) -> dict[tuple[State, Event], State]:
    return {(source, event): target for source in sources}


#: The one transition table: ``(state, event) -> next state``.
TABLE: dict[tuple[State, Event], State] = {
    **_rows((S.NONE, S.DELETED, S.FAILED, S.STOPPED), E.QUEUED, S.QUEUED),
    # An operation starts whatever the state (the queue serialises them; handlers decide whether to ask).
    **_rows(State, E.BUILD_STARTED, S.CREATING),
    **_rows(State, E.SYNC_STARTED, S.UPDATING),
    **_rows(State, E.STOP_STARTED, S.STOPPING),
    **_rows(State, E.DELETE_STARTED, S.DELETING),
    # How an operation ends, from the state its start set.
    **_rows((S.CREATING, S.UPDATING), E.BUILT, S.RUNNING),
    (S.UPDATING, E.SYNC_BLOCKED): S.RUNNING,
    **_rows((S.CREATING, S.UPDATING), E.HEAD_MOVED, S.RUNNING),
    **_rows((S.CREATING, S.UPDATING), E.HEAD_MOVED_NO_ENV, S.NONE),
    (S.STOPPING, E.STOPPED): S.STOPPED,
    (S.STOPPING, E.STOP_FAILED): S.STOPPING,  # as before the table: the comment shows the error
    (S.DELETING, E.DELETED): S.DELETED,
    **_rows((S.CREATING, S.UPDATING, S.DELETING), E.FAILED, S.FAILED),
    # Possible at any moment: ``status`` runs in any state, a cancel or a bug may strike before the start.
    **_rows(State, E.TIMED_OUT, S.FAILED),
    **_rows(State, E.CANCELLED_FOR_DELETE, S.DELETING),
    **_rows(State, E.CANCELLED, S.FAILED),
    **_rows(State, E.INTERNAL_ERROR, S.FAILED),
    **_rows(State, E.FOUND_RUNNING, S.RUNNING),
    **_rows(State, E.FOUND_STOPPED, S.STOPPED),
    **_rows(State, E.FOUND_NOT_FOUND, S.DELETED),
    **_rows(State, E.FOUND_MISSING, S.NONE),
}


class ImpossibleTransition(ValueError):
    """An event arrived in a state the table has no row for: a bug, reported as one."""


def transition(state: State | str, event: Event) -> State:
    """The state after ``event`` in ``state``; raises :class:`ImpossibleTransition` if it cannot happen."""
    try:
        return TABLE[(State(state), event)]
    except (KeyError, ValueError):
        raise ImpossibleTransition(f"{event.name} ({event.value}) cannot happen in state {state!r}") from None


def allows(state: State | str, event: Event) -> bool:
    return (state, event) in TABLE


#: The event that starts each operation (``status`` changes nothing when it starts).
STARTS: dict[str, Event] = {"up": E.BUILD_STARTED, "recreate": E.BUILD_STARTED, "reset": E.BUILD_STARTED,
                            "sync": E.SYNC_STARTED, "stop": E.STOP_STARTED, "delete": E.DELETE_STARTED}
#: What ``devpod status`` may report, as events (``Busy`` changes nothing).
FOUND: dict[str, Event] = {"Running": E.FOUND_RUNNING, "Stopped": E.FOUND_STOPPED, "NotFound": E.FOUND_NOT_FOUND}


# ------------------------------------------------------------------ questions asked of a state

def shows_queued(state: State | str) -> bool:
    """Does a build asked for now show as *queued*?  (No: one on its way or a running environment.)"""
    return allows(state, E.QUEUED)


def is_live(state: State | str) -> bool:
    """Is the environment up or on its way up?  Converting the PR to draft stops a live one.

    ``failed`` is not live: a failed build left nothing running to stop (and the reaper deletes it
    once unused), though it does accept a push (:func:`accepts_push`)."""
    return state in (S.RUNNING, S.CREATING, S.UPDATING, S.QUEUED)


def accepts_push(state: State | str) -> bool:
    """Does a push to the PR move the environment to the new head (``on_push``)?  A failed one retries."""
    return is_live(state) or state == S.FAILED


def can_sync(state: State | str) -> bool:
    """Can an environment that was built once be moved to a new head in place (``sync``) rather than ``up``?"""
    return state in (S.RUNNING, S.FAILED, S.UPDATING)


def is_building(state: State | str) -> bool:
    """Is a build (up or sync) already queued or running, so asking for another adds nothing?"""
    return state in (S.QUEUED, S.CREATING, S.UPDATING)


def is_starting(state: State | str) -> bool:
    """Is there no workspace pod yet, though one is coming?  (The links show a "starting" page.)"""
    return state in (S.QUEUED, S.CREATING)


def is_stopped(state: State | str) -> bool:
    """Is the workspace pod stopped or stopping?  (The links show a "stopped" page.)"""
    return state in (S.STOPPING, S.STOPPED)


def may_exist(state: State | str) -> bool:
    """Might DevPod hold a workspace (or be making one)?  Closing the PR deletes it then."""
    return state not in (S.NONE, S.DELETED)


def shows_ways_in(state: State | str) -> bool:
    """Does the sticky comment list how to get in (SSH, kubectl, browser links)?"""
    return state in (S.RUNNING, S.STOPPED, S.CREATING, S.UPDATING)


def expires_when_unused(state: State | str) -> bool:
    """Is the environment deleted after ``delete_after`` without use (the idle reaper)?"""
    return state in (S.STOPPED, S.FAILED)


# ------------------------------------------------------------------ the README's graph

def mermaid() -> str:
    """The table as a Mermaid ``stateDiagram-v2`` (the README's block): one edge per (from, to) pair,
    its events joined by " / "; events allowed from every state with one target come from ``any``."""
    edges: dict[tuple[str, str], list[str]] = {("[*]", INITIAL): ["a pull request gets a record"]}
    for event in Event:
        rows = {source: target for (source, e), target in TABLE.items() if e is event}
        targets = set(rows.values())
        if set(rows) == set(State) and len(targets) == 1:
            edges.setdefault(("any", targets.pop()), []).append(event.value)
            continue
        for source, target in rows.items():
            edges.setdefault((source, target), []).append(event.value)
    edges[(FINAL, "[*]")] = ["forgotten once no more work waits"]
    lines = ["stateDiagram-v2", '    state "any state" as any']
    lines += [f"    {source} --> {target}: {' / '.join(labels)}" for (source, target), labels in edges.items()]
    return "\n".join(lines) + "\n"
