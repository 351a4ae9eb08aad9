"""The environment state machine as a table: every row, the refusals, the predicates and the README graph."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from bot.environments import states
from bot.environments.states import Event, ImpossibleTransition, State, transition

README = Path(__file__).resolve().parents[1] / "README.md"
ALL = tuple(State)
S, E = State, Event

#: The table, written out again by hand: (from, event, to).  "every state" rows are expanded below.
ROWS = [
    (S.NONE, E.QUEUED, S.QUEUED),
    (S.DELETED, E.QUEUED, S.QUEUED),
    (S.FAILED, E.QUEUED, S.QUEUED),
    (S.STOPPED, E.QUEUED, S.QUEUED),
    (S.CREATING, E.BUILT, S.RUNNING),
    (S.UPDATING, E.BUILT, S.RUNNING),
    (S.UPDATING, E.SYNC_BLOCKED, S.RUNNING),
    (S.CREATING, E.HEAD_MOVED, S.RUNNING),
    (S.UPDATING, E.HEAD_MOVED, S.RUNNING),
    (S.CREATING, E.HEAD_MOVED_NO_ENV, S.NONE),
    (S.UPDATING, E.HEAD_MOVED_NO_ENV, S.NONE),
    (S.STOPPING, E.STOPPED, S.STOPPED),
    (S.STOPPING, E.STOP_FAILED, S.STOPPING),
    (S.DELETING, E.DELETED, S.DELETED),
    (S.CREATING, E.FAILED, S.FAILED),
    (S.UPDATING, E.FAILED, S.FAILED),
    (S.DELETING, E.FAILED, S.FAILED),
]
FROM_EVERY_STATE = {
    E.BUILD_STARTED: S.CREATING,
    E.SYNC_STARTED: S.UPDATING,
    E.STOP_STARTED: S.STOPPING,
    E.DELETE_STARTED: S.DELETING,
    E.TIMED_OUT: S.FAILED,
    E.CANCELLED_FOR_DELETE: S.DELETING,
    E.CANCELLED: S.FAILED,
    E.INTERNAL_ERROR: S.FAILED,
    E.FOUND_RUNNING: S.RUNNING,
    E.FOUND_STOPPED: S.STOPPED,
    E.FOUND_NOT_FOUND: S.DELETED,
    E.FOUND_MISSING: S.NONE,
}
EXPECTED = [*ROWS, *((state, event, target) for event, target in FROM_EVERY_STATE.items() for state in ALL)]


@pytest.mark.parametrize(("state", "event", "target"), EXPECTED, ids=lambda v: getattr(v, "name", str(v)))
def test_each_row_of_the_table(state, event, target):
    assert transition(state, event) is target


def test_the_table_has_no_row_besides_these():
    assert {(state, event): target for state, event, target in EXPECTED} == states.TABLE


IMPOSSIBLE = [(state, event) for state in ALL for event in Event if (state, event) not in states.TABLE]


@pytest.mark.parametrize(("state", "event"), IMPOSSIBLE, ids=lambda v: getattr(v, "name", str(v)))
def test_an_impossible_transition_is_refused_loudly(state, event):
    with pytest.raises(ImpossibleTransition, match=event.name):
        transition(state, event)


def test_a_state_read_from_a_journal_as_text_works_and_an_unknown_one_is_refused():
    assert transition("stopped", E.QUEUED) is S.QUEUED
    with pytest.raises(ImpossibleTransition):
        transition("waiting", E.QUEUED)


def test_every_operation_has_a_start_and_every_status_answer_an_event():
    assert set(states.STARTS) == {"up", "recreate", "reset", "sync", "stop", "delete"}
    assert {transition(S.QUEUED, e) for e in states.STARTS.values()} == {S.CREATING, S.UPDATING, S.STOPPING, S.DELETING}
    assert set(states.FOUND) == {"Running", "Stopped", "NotFound"}  # Busy: the state stays


PREDICATES = {
    # predicate: the states it holds for
    states.shows_queued: {S.NONE, S.DELETED, S.FAILED, S.STOPPED},
    states.is_live: {S.RUNNING, S.CREATING, S.UPDATING, S.QUEUED},
    states.accepts_push: {S.RUNNING, S.CREATING, S.UPDATING, S.QUEUED, S.FAILED},
    states.can_sync: {S.RUNNING, S.FAILED, S.UPDATING},
    states.is_building: {S.QUEUED, S.CREATING, S.UPDATING},
    states.is_starting: {S.QUEUED, S.CREATING},
    states.is_stopped: {S.STOPPING, S.STOPPED},
    states.may_exist: set(ALL) - {S.NONE, S.DELETED},
    states.shows_ways_in: {S.RUNNING, S.STOPPED, S.CREATING, S.UPDATING},
    states.expires_when_unused: {S.STOPPED, S.FAILED},
}


@pytest.mark.parametrize("predicate", PREDICATES, ids=lambda p: p.__name__)
def test_each_predicate_holds_for_exactly_its_states(predicate):
    assert {s for s in ALL if predicate(s)} == PREDICATES[predicate]
    assert {s for s in ALL if predicate(s.value)} == PREDICATES[predicate]  # plain strings too


def readme_graph() -> str:
    text = README.read_text()
    blocks = re.findall(r"```mermaid\n(stateDiagram-v2\n.*?)```", text, re.S)
    assert len(blocks) == 1, "the README has one Mermaid state diagram"
    return blocks[0]


def test_the_readme_draws_the_table():
    assert readme_graph() == states.mermaid(), (
        "README.md's state diagram differs from bot/environments/states.py; paste the output of "
        "`python -c 'from bot.environments import states; print(states.mermaid(), end=\"\")'` into it")


def test_the_graph_names_every_state_and_every_event():
    graph = states.mermaid()
    for state in State:
        assert re.search(rf"\b{state.value} -->|--> {state.value}\b", graph), state
    for event in Event:
        assert event.value in graph, event
