"""Issue 11 item 12: a PR closed, turned draft or pushed to while the bot was down is noticed at the next
start (and every DEVENV_CATCHUP_INTERVAL), with one conditional list call per repository.

The real bot on a socket, the GitHub emulator (which validates the list call and its 304 against
GitHub's description and counts requests), the stand-in devpod. Each test stops the bot, changes
the PR in the emulator as GitHub would while no webhook reaches the bot, and starts a new bot.
"""

from __future__ import annotations

from contextlib import asynccontextmanager

from bot.settings import config
from tests import payloads
from tests.botserver import BotServer
from tests.eventually import eventually
from tests.observe import devenv_runs, sticky
from tests.test_approval import fork_pr
from tests.test_commands_e2e import command

OWNER, REPO, NUMBER = "Codertocat", "Hello-World", payloads.PR_NUMBER
WS = "hello-world-pr2-4d960c"
NEW_HEAD = "c3" * 20
LIST = "pulls/list"
WRITES = ("POST", "PATCH", "PUT", "DELETE")


@asynccontextmanager
async def running(environ):
    server = await BotServer(config.load(environ)).start()
    try:
        yield server
    finally:
        await server.stop()


async def first_run(environ, payload) -> None:
    """A bot that builds the PR's environment, then stops (as for an upgrade)."""
    async with running(environ) as server:
        await server.deliver("pull_request", payload)
        await server.settle()
        await eventually(lambda: server.bot.catchup.rounds >= 1, what="the start-up catch-up")


async def caught_up(server) -> None:
    await eventually(lambda: server.bot.catchup.rounds >= 1, what="the start-up catch-up")
    await server.settle()


def pull(github) -> dict:
    return github.state.repo(OWNER, REPO).pulls[NUMBER]


async def test_a_pr_closed_while_the_bot_was_down_is_deleted_at_the_next_start(environ, repo, github, devpod):
    await first_run(environ, payloads.pull_request("opened"))
    assert devpod.workspace(WS) is not None
    pull(github)["state"] = "closed"
    async with running(environ) as server:
        await caught_up(server)
        assert WS not in server.bot.environments.records
    assert len(devpod.calls("delete")) == 1 and devpod.workspace(WS) is None
    assert "⚫ Deleted" in sticky(github)  # as after a pull_request.closed webhook
    assert all(run["status"] == "completed" for run in devenv_runs(github))


async def test_a_push_while_the_bot_was_down_is_synced_at_the_next_start(environ, repo, github, devpod):
    await first_run(environ, payloads.pull_request("opened"))
    pull(github)["head_sha"] = NEW_HEAD
    async with running(environ) as server:
        await caught_up(server)
        record = server.bot.environments.records[WS]
        assert record.env_sha == NEW_HEAD and record.last_action.by == "devenv-bot (catch-up)"
    ups = devpod.calls("up")
    assert len(ups) == 2 and "--reset=true" in ups[1]["argv"]  # the push's path: sync, not a rebuild
    assert devenv_runs(github)[-1]["head_sha"] == NEW_HEAD
    assert f"`{NEW_HEAD[:7]}`, the PR head" in sticky(github)


async def test_a_pr_turned_draft_while_the_bot_was_down_is_stopped(environ, repo, github, devpod):
    await first_run(environ, payloads.pull_request("opened", draft=False))  # the bot saw it ready for review
    pull(github)["draft"] = True
    async with running(environ) as server:
        await caught_up(server)
        assert server.bot.environments.records[WS].state == "stopped"
    assert len(devpod.calls("stop")) == 1


async def test_a_second_round_with_nothing_changed_is_one_304_and_writes_nothing(environ, repo, github, devpod):
    await first_run(environ, payloads.pull_request("opened"))
    github.reset_calls()
    async with running(environ) as server:
        await caught_up(server)
        assert [c.status for c in github.calls_to("GET", LIST)] == [200]  # one call for the repository
        before = len(github.calls)
        remaining = github.rate_snapshot("installation:1")["remaining"]
        await server.bot.catchup.run_once()
        await server.settle()
        made = github.calls[before:]
        assert [(c.operation_id, c.status) for c in made] == [(LIST, 304)]
        assert made[0].headers.get("If-None-Match", "").startswith('W/"')
        assert github.rate_snapshot("installation:1")["remaining"] == remaining  # a 304 costs no rate limit
        assert not [c for c in made if c.method in WRITES]
    assert len(devpod.calls("up")) == 1


async def test_a_repository_with_many_open_prs_costs_one_call_per_page(environ, repo, github, devpod):
    for number in range(10, 130):  # 121 open PRs: two pages of 100
        github.add_pull(OWNER, REPO, number)
    await first_run(environ, payloads.pull_request("opened"))
    github.reset_calls()
    pull(github)["state"] = "closed"  # PR 2 is the oldest: on the second page while it was open
    async with running(environ) as server:
        await caught_up(server)
        assert [c.query.get("page", "1") for c in github.calls_to("GET", LIST)] == ["1", "2"]
        assert not github.calls_to("GET", r"/pulls/\d+$")  # never one call per PR
        assert WS not in server.bot.environments.records


async def test_an_untrusted_fork_pushed_to_while_the_bot_was_down_is_not_built(environ, repo, github, devpod):
    github.set_permission(OWNER, REPO, "maintainer", "write")
    devpod.set_refs(f"{OWNER}/{REPO}", {"refs/pull/2/head": "a1" * 20})  # what DevPod clones is the approved commit
    async with running(environ) as server:
        await server.deliver("pull_request", fork_pr(github, "a1" * 20))
        await server.deliver("issue_comment", command(github, "/devenv approve", user="maintainer"))
        await server.settle()
    assert len(devpod.calls("up")) == 1
    fork_pr(github, NEW_HEAD)  # the fork's author pushes while the bot is down
    async with running(environ) as server:
        await caught_up(server)
        record = server.bot.environments.records[WS]
        assert record.head_sha == NEW_HEAD and record.env_sha == "a1" * 20
    assert len(devpod.calls("up")) == 1  # nobody approved the new head: nothing built
    assert "not** updated" in sticky(github)


async def test_a_repository_that_cannot_be_listed_deletes_nothing(environ, repo, github, devpod):
    await first_run(environ, payloads.pull_request("opened"))
    github.inject("GET", LIST, status=404, times=100)
    async with running(environ) as server:
        await caught_up(server)
        assert WS in server.bot.environments.records
    assert devpod.calls("delete") == []


async def test_an_environment_asked_for_on_a_draft_pr_is_not_stopped_by_the_catch_up(environ, repo, github, devpod):
    pull(github)["draft"] = True
    async with running(environ) as server:
        await server.deliver("pull_request", payloads.pull_request("opened", draft=True))
        await server.deliver("issue_comment", command(github, "/devenv up"))
        await server.settle()
        assert server.bot.environments.records[WS].state == "running"
        await server.bot.catchup.run_once()
        await server.settle()
        assert server.bot.environments.records[WS].state == "running"
    assert devpod.calls("stop") == []
