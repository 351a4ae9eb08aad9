"""What counts as use of an environment (issue 13 item 3), kept durably and saved sparingly."""

from __future__ import annotations

import dataclasses
import json
import time

from bot.environments.activity import Activity, Source, last_active, source_of
from bot.environments.journal import Action, EnvRecord, Journal
from bot.environments.reaper import IdleReaper
from bot.environments.states import State
from tests import payloads
from tests.botserver import BotServer
from tests.test_environments import WS, start

HOURS = 3600.0


class Store:
    """Records as :class:`Activity` sees them, counting saves."""

    def __init__(self, *records: EnvRecord) -> None:
        self.by_id = {r.ws_id: r for r in records}
        self.saves: list[tuple[str, float]] = []

    def get(self, ws_id: str) -> EnvRecord | None:
        return self.by_id.get(ws_id)

    def save(self, record: EnvRecord) -> None:
        self.saves.append((record.ws_id, record.active_at))


def record(**changes) -> EnvRecord:
    return EnvRecord(ws_id=WS, installation_id=1, owner="Codertocat", repo="Hello-World", number=2,
                     head_sha="a" * 40, **changes)


class Clock:
    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_what_each_operation_counts_as():
    assert {k: source_of(k) for k in ("up", "recreate", "reset", "extend", "sync")} == {
        "up": Source.COMMAND, "recreate": Source.COMMAND, "reset": Source.COMMAND, "extend": Source.COMMAND,
        "sync": Source.PUSH}
    assert [source_of(k) for k in ("status", "logs", "help", "stop", "delete")] == [None] * 5


def test_activity_is_current_in_memory_but_saved_at_most_once_a_minute():
    clock, rec = Clock(), record()
    store = Store(rec)
    activity = Activity(store, clock)
    activity.note(WS, Source.IDE)
    assert store.saves == [(WS, clock.now)]  # the first use is saved at once
    for _ in range(50):  # a busy IDE: no write storm
        clock.now += 1
        activity.note(WS, Source.IDE)
    assert len(store.saves) == 1
    assert (rec.active_at, rec.active_via) == (clock.now, "ide")  # yet the record is current
    assert activity.last(WS) == (clock.now, "ide")
    clock.now += 10
    activity.note(WS, Source.SSH)
    assert store.saves[-1] == (WS, clock.now) and len(store.saves) == 2  # a minute on: saved again
    clock.now += 1
    activity.note(WS, Source.PREVIEW)
    activity.flush()  # a clean shutdown saves what is not saved yet
    assert store.saves[-1] == (WS, clock.now) and len(store.saves) == 3
    activity.flush()
    assert len(store.saves) == 3  # nothing left to save


def test_an_older_use_never_moves_the_last_use_back_and_unknown_workspaces_are_ignored():
    clock, rec = Clock(), record()
    activity = Activity(Store(rec), clock)
    activity.note(WS, Source.COMMAND)
    activity.note(WS, Source.IDE, clock.now - 100)
    assert activity.last(WS) == (clock.now, "command")
    activity.note("no-such-workspace", Source.IDE)  # no error, nothing made


def test_last_active_reads_the_record_and_falls_back_to_the_last_action_for_old_records():
    old = record(last_action=Action("up", "Codertocat", 1000.0, "succeeded"), updated_at=1500.0)
    assert last_active(old) == 1000.0
    assert last_active(record(updated_at=1500.0)) == 1500.0
    used = record(last_action=Action("status", "Codertocat", 9000.0, "succeeded"), active_at=2000.0)
    assert last_active(used) == 2000.0  # a status after the last use does not count
    assert last_active(used, also=3000.0) == 3000.0


def test_the_last_use_is_kept_in_the_journal(tmp_path):
    journal = Journal(tmp_path)
    journal.save(record(active_at=1234.5, active_via="ssh"))
    [loaded] = journal.load_all()
    assert (loaded.active_at, loaded.active_via) == (1234.5, "ssh")


# -- end to end: the real bot, the GitHub emulator, the stand-in devpod ------------------------------------


def age(server: BotServer, seconds: float) -> EnvRecord:
    """Make the environment's every time ``seconds`` older, as if that long had passed."""
    rec = server.bot.environments.records[WS]
    rec.active_at = getattr(rec, "active_at", 0.0) - seconds
    rec.history = [dataclasses.replace(a, at=a.at - seconds) for a in rec.history]
    object.__setattr__(rec, "last_action", rec.history[-1])
    return rec


async def comment(server: BotServer, github, body: str) -> None:
    made = github.add_comment("Codertocat", "Hello-World", payloads.PR_NUMBER, body)
    status, _ = await server.deliver("issue_comment", payloads.pr_comment(body, comment_id=made["id"]))
    assert status == 202
    await server.settle()


async def test_a_status_hours_later_does_not_keep_an_environment_alive(server, github, devpod):
    await server.deliver("pull_request", payloads.pull_request("opened"))
    await server.settle()
    rec = age(server, 3 * HOURS)  # three hours without use: past the default idle_stop of two
    await comment(server, github, "/devenv status")
    assert rec.last_action.verb == "status" and time.time() - rec.last_action.at < 60
    assert IdleReaper(server.bot.environments).sweep() == [(WS, "stop")]
    await server.settle()
    assert rec.state == State.STOPPED and len(devpod.calls("stop")) == 1


async def test_a_command_that_acts_keeps_it_alive(server, github):
    await server.deliver("pull_request", payloads.pull_request("opened"))
    await server.settle()
    rec = age(server, 3 * HOURS)
    await comment(server, github, "/devenv up")
    assert rec.active_via == "command" and time.time() - rec.active_at < 60
    assert IdleReaper(server.bot.environments).sweep() == []


async def test_a_stop_starts_the_clock_of_delete_after_and_is_no_use_of_a_running_one(server, github):
    await server.deliver("pull_request", payloads.pull_request("opened"))
    await server.settle()
    rec = age(server, 30 * 24 * HOURS)
    await comment(server, github, "/devenv stop")
    assert rec.state == State.STOPPED and rec.active_via == "stopped"
    assert IdleReaper(server.bot.environments).sweep() == []  # not deleted at once: 7 days from the stop


async def test_activity_survives_a_restart(environ, repo, devpod):
    first = await start(environ)
    await first.deliver("pull_request", payloads.pull_request("opened"))
    await first.settle()
    activity = first.bot.environments.activity
    used = time.time() + 5
    activity.note(WS, Source.IDE, used)  # within a minute of the up's save: kept in memory only...
    path = first.settings.state_dir / "environments" / f"{WS}.json"
    assert json.loads(path.read_text())["active_at"] < used
    await first.stop()  # ...until the clean shutdown saves it
    assert json.loads(path.read_text())["active_at"] == used
    second = await start(environ)
    try:
        rec = second.bot.environments.records[WS]
        assert (rec.active_at, rec.active_via) == (used, "ide")
        reaper = second.bot.reaper
        assert reaper is not None and reaper.last_active(rec) == used
        assert IdleReaper(second.bot.environments, clock=lambda: used + 2 * HOURS - 60).sweep() == []
        assert IdleReaper(second.bot.environments, clock=lambda: used + 2 * HOURS + 60).sweep() == [(WS, "stop")]
        await second.settle()
    finally:
        await second.stop()
