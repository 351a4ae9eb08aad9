"""The countdown, its warning, ``/devenv extend`` and the Extend button, and the check runs of states no
operation of the head concluded, end to end (issue 13 item 2 and two check-run gaps).

The real bot on a socket, the GitHub emulator, the stand-in devpod; the idle reaper swept on a clock
moved ahead, as ``tests/test_check_runs_e2e.py`` does.
"""

from __future__ import annotations

import time

from bot.text.markdown import utc
from tests import payloads
from tests.observe import devenv_runs, sticky
from tests.test_check_runs_e2e import READY, STOPPED, check_writes, press
from tests.test_commands_e2e import WS, command, open_pr, reactions, replies

OWNER, REPO, NUMBER = "Codertocat", "Hello-World", payloads.PR_NUMBER
H = 3600.0


def record(server):
    return server.bot.environments.records[WS]


def sweep_at(server, moment: float) -> list:
    reaper = server.bot.reaper
    reaper.clock = lambda: moment
    return reaper.sweep()


def comment_edits(github) -> list:
    return [c for c in github.calls if c.method == "PATCH" and "/issues/comments/" in c.path]


def shown(run) -> tuple:
    return run["status"], run["conclusion"], run["output"]["title"], [a["label"] for a in run.get("actions") or []]


async def test_the_comment_says_when_a_running_environment_stops(server, github, devpod):
    before = time.time()
    await open_pr(server, github)
    rec = record(server)
    assert rec.stop_at is not None and before + 2 * H <= rec.stop_at <= time.time() + 2 * H
    assert f"**It stops at {utc(rec.stop_at)}**, in about 2 h, unless used" in sticky(github)


async def test_extend_2h_moves_the_stop_and_the_reaper_does_not_stop_it_before(server, github, devpod):
    await open_pr(server, github)
    first_stop = record(server).stop_at
    payload = command(github, "/devenv extend 2h")
    await server.deliver("issue_comment", payload)
    await server.settle()
    rec = record(server)
    assert rec.keep_until is not None and rec.keep_until >= first_stop + 2 * H - 1
    assert reactions(github, payload) == ["rocket"] and replies(github) == []
    text = sticky(github)
    assert f"**It stops at {utc(rec.stop_at)}**" in text and "| Codertocat | `extend` | succeeded |" in text
    assert sweep_at(server, first_stop + 60) == []  # past the old stop: kept
    assert sweep_at(server, rec.keep_until - 60) == []
    assert sweep_at(server, rec.keep_until + 60) == [(WS, "stop")]
    await server.settle()
    assert record(server).state == "stopped"


async def test_an_extension_beyond_the_maximum_is_refused_naming_it(server, github, devpod):
    await open_pr(server, github)
    payload = command(github, "/devenv extend 2d")
    await server.deliver("issue_comment", payload)
    await server.settle()
    [reply] = replies(github)
    assert "at most **1 day**" in reply and "`extend.max` in `.github/devenv.yml`" in reply
    assert reactions(github, payload) == ["confused"]
    assert record(server).keep_until is None


async def test_the_extend_button_extends_by_the_default_with_the_clickers_permission(server, github, devpod):
    await open_pr(server, github)
    assert shown(devenv_runs(github)[-1]) == READY
    first_stop = record(server).stop_at
    github.set_permission(OWNER, REPO, "reader", "read")
    await server.deliver("check_run", press(github, "extend", user="reader"))
    await server.settle()
    assert record(server).keep_until is None  # a button needs write
    await server.deliver("check_run", press(github, "extend"))
    await server.settle()
    rec = record(server)
    assert rec.keep_until is not None and rec.keep_until >= first_stop + 2 * H - 1
    assert rec.last_action.verb == "extend" and rec.last_action.by == "Codertocat"
    assert f"**It stops at {utc(rec.stop_at)}**" in sticky(github)
    github.assert_valid()


async def test_the_warning_is_one_comment_edit_shortly_before_the_idle_stop(server, github, devpod):
    await open_pr(server, github)
    stop = record(server).stop_at
    github.reset_calls()
    assert sweep_at(server, stop - 20 * 60) == []
    await server.settle()
    assert comment_edits(github) == []  # not yet, and the stop did not move
    for minutes in (10, 9, 5):
        assert sweep_at(server, stop - minutes * 60) == []
        await server.settle()
    assert len(comment_edits(github)) == 1
    assert f"**Stopping soon:** the environment stops at {utc(stop)}" in sticky(github)
    assert sweep_at(server, stop + 60) == [(WS, "stop")]
    await server.settle()
    assert "Stopping soon" not in sticky(github)


async def test_status_that_finds_another_state_updates_the_check_run(server, github, devpod):
    await open_pr(server, github)
    devpod.set_cluster(WS, pod=None)  # the pod went away behind the bot's back: DevPod says Stopped
    github.reset_calls()
    await server.deliver("issue_comment", command(github, "/devenv status"))
    await server.settle()
    [run] = devenv_runs(github)
    assert shown(run) == STOPPED
    assert len(check_writes(github)) == 1
    github.reset_calls()
    await server.deliver("issue_comment", command(github, "/devenv status"))  # nothing changed: no write
    await server.settle()
    assert check_writes(github) == []


async def test_a_push_to_a_stopped_pr_gives_the_new_head_a_stopped_check_run(server, github, devpod):
    await open_pr(server, github)
    await server.deliver("issue_comment", command(github, "/devenv stop"))
    await server.settle()
    new_head = "b" * 40
    github.add_pull(OWNER, REPO, NUMBER, head_sha=new_head)
    github.reset_calls()
    await server.deliver("pull_request", payloads.pull_request("synchronize", head_sha=new_head))
    await server.settle()
    runs = devenv_runs(github)
    assert [r["head_sha"] for r in runs][-1] == new_head and len(runs) == 2
    assert shown(runs[-1]) == STOPPED
    assert len(check_writes(github)) == 1  # created completed: one write
    assert devpod.calls("up")[1:] == []  # nothing synced
    github.assert_valid()
