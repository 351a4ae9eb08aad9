"""Idle environments are stopped, long-unused ones deleted, busy ones left alone."""

from __future__ import annotations

import pytest

from bot.environments.journal import Action
from bot.environments.reaper import IdleReaper
from tests import payloads
from tests.test_golden import manager as make_manager
from tests.test_golden import record as make_record

NOW = 1_800_000_000.0


class Asked:
    def __init__(self, manager) -> None:
        self.calls: list[tuple[str, str, str]] = []
        manager.request = self  # record instead of running DevPod

    def __call__(self, info, kind, *, requested_by, **_):
        self.calls.append((info.ref.number, kind, requested_by))


@pytest.fixture
def manager(tmp_path):
    return make_manager(tmp_path)


def put(manager, number: int, state: str, idle_for: float, **changes):
    rec = make_record(number=number, ws_id=f"hello-world-pr{number}-4d960c", state=state,
                      last_action=Action("up", "Codertocat", NOW - idle_for, "succeeded"), **changes)
    manager.records[rec.ws_id] = rec
    return rec


def test_a_running_environment_idle_past_its_limit_is_stopped(manager):
    asked = Asked(manager)
    put(manager, 2, "running", 2 * 3600 + 1)
    put(manager, 3, "running", 600)
    IdleReaper(manager, clock=lambda: NOW).sweep()
    assert asked.calls == [(2, "stop", "devenv-bot (idle)")]


def test_browser_activity_keeps_an_environment_running(manager):
    asked = Asked(manager)
    rec = put(manager, 2, "running", 5 * 3600)
    IdleReaper(manager, clock=lambda: NOW, activity={rec.ws_id: NOW - 60}.get).sweep()
    assert asked.calls == []


def test_a_long_stopped_environment_is_deleted_and_never_means_never(manager):
    asked = Asked(manager)
    put(manager, 2, "stopped", 8 * 24 * 3600)
    put(manager, 3, "stopped", 8 * 24 * 3600, delete_after=None)
    put(manager, 4, "running", 30 * 24 * 3600, idle_stop=None)
    IdleReaper(manager, clock=lambda: NOW).sweep()
    assert asked.calls == [(2, "delete", "devenv-bot (idle)")]


def test_busy_environments_are_left_alone(manager):
    asked = Asked(manager)
    rec = put(manager, 2, "running", 5 * 3600)
    put(manager, 3, "running", 5 * 3600)
    manager.slots[rec.ws_id] = object()  # an operation is running or waiting
    IdleReaper(manager, clock=lambda: NOW, busy=lambda r: r.number == 3).sweep()
    assert asked.calls == []


async def test_an_idle_environment_is_really_stopped_end_to_end(server, github, devpod):
    await server.deliver("pull_request", payloads.pull_request("opened"))
    await server.settle()
    manager = server.bot.environments
    [record] = manager.records.values()
    record.last_action.at -= 3 * 3600
    assert IdleReaper(manager).sweep() == [(record.ws_id, "stop")]
    await server.settle()
    assert len(devpod.calls("stop")) == 1
    assert manager.records[record.ws_id].state == "stopped"
    assert manager.records[record.ws_id].last_action.by == "devenv-bot (idle)"
