"""Idle environments are stopped, long-unused ones deleted, busy ones left alone."""

from __future__ import annotations

import time

from bot.environments.journal import Action, EnvRecord, PullInfo
from bot.environments.reaper import IdleReaper
from bot.environments.states import State
from tests import payloads
from tests.test_golden import record as make_record

NOW = 1_800_000_000.0


class Environments:
    """The environment service as the reaper sees it (``reaper.Environments``), noting what it is asked."""

    def __init__(self) -> None:
        self.records: dict[str, EnvRecord] = {}
        self.busy_ids: set[str] = set()
        self.calls: list[tuple[int, str, str]] = []

    def busy(self, ws_id: str) -> bool:
        return ws_id in self.busy_ids

    def request(self, info: PullInfo, kind: str, *, requested_by: str) -> None:
        self.calls.append((info.ref.number, kind, requested_by))

    def put(self, number: int, state: State, idle_for: float, **changes) -> EnvRecord:
        rec = make_record(number=number, ws_id=f"hello-world-pr{number}-4d960c", state=state,
                          last_action=Action("up", "Codertocat", NOW - idle_for, "succeeded"), **changes)
        self.records[rec.ws_id] = rec
        return rec


def test_a_running_environment_idle_past_its_limit_is_stopped():
    envs = Environments()
    envs.put(2, State.RUNNING, 2 * 3600 + 1)
    envs.put(3, State.RUNNING, 600)
    IdleReaper(envs, clock=lambda: NOW).sweep()
    assert envs.calls == [(2, "stop", "devenv-bot (idle)")]


def test_browser_activity_keeps_an_environment_running():
    envs = Environments()
    rec = envs.put(2, State.RUNNING, 5 * 3600)
    IdleReaper(envs, clock=lambda: NOW, activity={rec.ws_id: NOW - 60}.get).sweep()
    assert envs.calls == []


def test_a_long_stopped_environment_is_deleted_and_never_means_never():
    envs = Environments()
    envs.put(2, State.STOPPED, 8 * 24 * 3600)
    envs.put(3, State.STOPPED, 8 * 24 * 3600, delete_after=None)
    envs.put(4, State.RUNNING, 30 * 24 * 3600, idle_stop=None)
    IdleReaper(envs, clock=lambda: NOW).sweep()
    assert envs.calls == [(2, "delete", "devenv-bot (idle)")]


def test_a_long_failed_environment_is_deleted_too():
    envs = Environments()
    envs.put(2, State.FAILED, 8 * 24 * 3600)
    envs.put(3, State.QUEUED, 8 * 24 * 3600)  # on its way up: not the reaper's business
    IdleReaper(envs, clock=lambda: NOW).sweep()
    assert envs.calls == [(2, "delete", "devenv-bot (idle)")]


def test_busy_environments_are_left_alone():
    envs = Environments()
    rec = envs.put(2, State.RUNNING, 5 * 3600)
    envs.put(3, State.RUNNING, 5 * 3600)
    envs.busy_ids.add(rec.ws_id)  # an operation is running or waiting
    IdleReaper(envs, clock=lambda: NOW, busy=lambda r: r.number == 3).sweep()
    assert envs.calls == []


async def test_an_idle_environment_is_really_stopped_end_to_end(server, github, devpod):
    opened = payloads.pull_request("opened")
    await server.deliver("pull_request", opened)
    await server.settle()
    manager = server.bot.environments
    info = PullInfo.from_payload(payloads.INSTALLATION_ID, opened["pull_request"], opened["repository"])
    later = time.time() + 3 * 3600  # three hours on: past the default idle_stop of two
    assert IdleReaper(manager, clock=lambda: later).sweep() == [(manager.find(info).ws_id, "stop")]
    await server.settle()
    assert len(devpod.calls("stop")) == 1
    record = manager.find(info)
    assert record.state == State.STOPPED
    assert record.last_action.by == "devenv-bot (idle)"
