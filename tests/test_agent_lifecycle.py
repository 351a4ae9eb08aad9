"""Agent runs against what a real DevPod does to them (CONTRACT §9): a workspace stopped or deleted under
a run, signals that must not wake a stopped workspace, and a bot that dies during a run.

The real app on a socket, the GitHub emulator, the stand-in devpod (whose ``ssh`` hangs once its
container goes away, as v0.6.15's did) and the stand-in ``claude``."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time

import aiohttp
import pytest

from tests import payloads
from tests.botserver import BotServer, bot_environ
from tests.eventually import eventually
from tests.test_agent_e2e import (
    KEY,
    NUMBER,
    OWNER,
    REPO,
    SAMPLES,
    STANDIN_DIR,
    WS,
    agent_call,
    agent_checks,
    command,
    finish,
    open_pr,
    reactions,
    replies,
)
from tests.test_process import post, spawn
from tests.test_setup import free_port, wait_ready

pytestmark = pytest.mark.skipif(not SAMPLES.is_dir(), reason=f"no Claude Code stream samples at {SAMPLES}")

#: Far beyond what any of these tests may take: a run that ends only on its time limit fails them.
AGENT_TIMEOUT = "600"


@pytest.fixture
def environ(github, tmp_path, devpod):
    env = devpod.env()
    env["PATH"] = f"{STANDIN_DIR}:{env['PATH']}"  # the stand-in claude is found inside the "container"
    return bot_environ(github, tmp_path / "state", **env, DEVENV_AGENT_API_KEY=KEY,
                       DEVENV_AGENT_PROGRESS_INTERVAL="0", DEVENV_AGENT_CANCEL_GRACE="5",
                       DEVENV_AGENT_TIMEOUT=AGENT_TIMEOUT)


def ssh_commands(devpod) -> list[str]:
    return [c["argv"][c["argv"].index("--command") + 1] for c in devpod.calls("ssh")]


def signals_sent(devpod) -> list[str]:
    return [c for c in ssh_commands(devpod) if "kill -s " in c]


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ", 1)[1][0] != "Z"
    except (ProcessLookupError, FileNotFoundError):
        return False


async def agent_at_work(server, github, devpod) -> dict:
    """Open the PR, start a run whose agent waits in a tool call, and wait until it is at work."""
    await open_pr(server, github)
    payload = command(github, '/devenv agent run "#scenario:hang"')
    await server.deliver("issue_comment", payload)
    await server.settle()
    await eventually(lambda: (devpod.container_dir(WS) / ".agent-call.json").exists()
                     and any(c["status"] == "in_progress" and "Agent running" in c["output"]["title"]
                             for c in agent_checks(github)), what="the agent to be at work")
    return payload


async def test_devenv_stop_during_a_run_ends_it_cancelled_at_once_and_the_workspace_stays_stopped(
        server, github, devpod):
    payload = await agent_at_work(server, github, devpod)
    agent_pid = agent_call(devpod)["pid"]
    starts = devpod.cluster(WS).get("starts", 0)
    github.set_permission(OWNER, REPO, "hubot", "write")
    began = time.monotonic()
    await server.deliver("issue_comment", command(github, "/devenv stop", user="hubot"))
    # Without the hook the run's `devpod ssh` hangs once the container stops: the check run would stay
    # in progress until the agent's time limit.
    await eventually(lambda: agent_checks(github)[0]["status"] == "completed", timeout=20,
                     what="the agent check run to conclude")
    assert time.monotonic() - began < 20
    await finish(server)
    [check] = agent_checks(github)
    assert check["conclusion"] == "cancelled"
    assert "being stopped (hubot ran `/devenv stop`)" in check["output"]["summary"]
    assert "being stopped (hubot ran `/devenv stop`)" in replies(github)[-1]
    assert reactions(github, payload) == ["eyes", "confused"]
    assert server.bot.agent_runs.runs == {}
    assert server.bot.environments.records[WS].state == "stopped"
    cluster = devpod.cluster(WS)
    assert cluster["pod"] is None and cluster.get("starts", 0) == starts  # nothing woke it again
    assert signals_sent(devpod) == []  # the container went anyway: no `devpod ssh` to signal it
    assert not alive(agent_pid)
    ssh_calls = devpod.calls("ssh")
    stop_call = devpod.calls("stop")[0]
    assert all(c["time"] < stop_call["time"] for c in ssh_calls)  # the run ended before DevPod stopped it


@pytest.mark.parametrize(("action", "does"), [("closed", "deleted"), ("converted_to_draft", "stopped")])
async def test_a_pr_closed_or_back_to_draft_during_a_run_ends_it_first(server, github, devpod, action, does):
    await agent_at_work(server, github, devpod)
    await server.deliver("pull_request", payloads.pull_request(action))
    await eventually(lambda: agent_checks(github)[0]["status"] == "completed", timeout=20,
                     what="the agent check run to conclude")
    await finish(server)
    [check] = agent_checks(github)
    assert check["conclusion"] == "cancelled" and f"being {does}" in check["output"]["summary"]
    assert server.bot.agent_runs.runs == {} and signals_sent(devpod) == []
    if does == "deleted":
        assert devpod.workspace(WS) is None
    else:
        assert devpod.cluster(WS)["pod"] is None


async def test_agent_stop_never_wakes_a_workspace_stopped_under_the_run(server, github, devpod):
    await agent_at_work(server, github, devpod)
    # The workspace stops behind the bot's back (a `devpod stop` by hand, the cluster): the run's
    # `devpod ssh` now hangs, and any further `devpod ssh` would start the workspace again.
    proc = subprocess.run([str(devpod.binary), "stop", WS], env={**os.environ, **devpod.env()}, capture_output=True,
                          timeout=30)
    assert proc.returncode == 0
    starts = devpod.cluster(WS).get("starts", 0)
    await server.deliver("issue_comment", command(github, "/devenv agent stop"))
    await eventually(lambda: agent_checks(github)[0]["status"] == "completed", timeout=20,
                     what="the agent check run to conclude")
    await finish(server)
    assert agent_checks(github)[0]["conclusion"] == "cancelled"
    assert signals_sent(devpod) == []
    cluster = devpod.cluster(WS)
    assert cluster["pod"] is None and cluster.get("starts", 0) == starts


async def test_agent_stop_still_interrupts_the_agent_in_a_running_workspace(server, github, devpod):
    await agent_at_work(server, github, devpod)
    await server.deliver("issue_comment", command(github, "/devenv agent stop"))
    await finish(server)
    [check] = agent_checks(github)
    assert check["conclusion"] == "cancelled" and "stopped cleanly" in check["output"]["summary"]
    [sent] = signals_sent(devpod)
    assert "kill -s INT " in sent and "__DEVENV_RUN=" in sent


# --------------------------------------------------------------------------- a bot that dies during a run


@pytest.mark.slow
async def test_a_bot_killed_during_a_run_concludes_it_on_its_next_start_and_ends_the_agent(
        repo, github, devpod, environ, tmp_path):
    port = free_port()
    env = {**environ, "PORT": str(port)}
    url = f"http://127.0.0.1:{port}"
    github.set_permission(OWNER, REPO, "Codertocat", "admin")
    first = spawn(env, tmp_path, "serve")
    second = None
    try:
        async with aiohttp.ClientSession() as session:
            await wait_ready(session, url, 200)
            assert await post(session, url, github.webhook_secret, "pull_request",
                              payloads.pull_request("opened")) == 202
            await eventually(lambda: [c["conclusion"] for c in github.check_runs(OWNER, REPO)
                                      if c["name"] == "devenv"] == ["success"], timeout=30, what="the environment")
            body = '/devenv agent run "#scenario:hang"'
            comment = github.add_comment(OWNER, REPO, NUMBER, body, user="Codertocat")
            assert await post(session, url, github.webhook_secret, "issue_comment",
                              payloads.pr_comment(body, user="Codertocat", comment_id=comment["id"])) == 202
            await eventually(lambda: (devpod.container_dir(WS) / ".agent-call.json").exists()
                             and agent_checks(github) and "Agent running" in agent_checks(github)[0]["output"]["title"],
                             timeout=30, what="the agent to be at work")
            agent_pid = agent_call(devpod)["pid"]
            first.send_signal(signal.SIGKILL)
            await asyncio.to_thread(first.communicate, timeout=10)
            assert agent_checks(github)[0]["status"] == "in_progress"  # what a crash leaves behind
            assert alive(agent_pid)  # and the agent works on, orphaned

            second = spawn(env, tmp_path, "serve")
            await wait_ready(session, url, 200)
            await eventually(lambda: agent_checks(github)[0]["status"] == "completed", timeout=30,
                             what="the agent check run to conclude")
            await eventually(lambda: not alive(agent_pid), timeout=30, what="the orphaned agent to be stopped")
            await eventually(lambda: "confused" in [r["content"] for r in github.reactions(OWNER, REPO, comment["id"])],
                             timeout=30, what="the 😕 on the command")
    finally:
        for proc in (first, second):
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                proc.communicate(timeout=30)
    [check] = agent_checks(github)
    assert check["conclusion"] == "cancelled"
    assert check["output"]["title"] == "The agent run was interrupted by a bot restart"
    assert "devenv-bot restarted while this agent run was going" in check["output"]["summary"]
    assert '/devenv agent run "…"' in check["output"]["summary"]  # what to do: run it again
    assert list((tmp_path / "state" / "agent-runs").glob("*.json")) == []  # nothing owed any more
    [final] = replies(github)  # once, to the requester
    assert final.startswith("@Codertocat, the agent run you asked for was cancelled")
    assert "devenv-bot restarted while this agent run was going" in final
    kills = signals_sent(devpod)
    assert kills and "kill -s INT " in kills[0]  # the orphan was interrupted by its run id
    assert devpod.cluster(WS)["pod"] == "Running"


async def test_a_conclusion_github_never_got_is_written_on_the_next_start(settings, repo, github, devpod):
    first = await BotServer(settings).start()
    try:
        await open_pr(first, github)
        github.inject(method="PATCH", path=r"/check-runs/\d+$", status=502, times=100_000)  # nothing gets through
        await first.deliver("issue_comment", command(github, '/devenv agent run "Say hello"'))
        await finish(first)
        assert [c["status"] for c in agent_checks(github)] == ["in_progress"]  # the conclusion was tried, and lost
    finally:
        await first.stop()
    github.faults.clear()
    second = await BotServer(settings).start()
    try:
        await eventually(lambda: agent_checks(github)[0]["status"] == "completed", what="the owed conclusion")
        await second.bot.agent_runs.idle()
    finally:
        await second.stop()
    [check] = agent_checks(github)
    assert check["conclusion"] == "success" and check["output"]["title"] == "The agent finished"
    assert list(settings.state_dir.joinpath("agent-runs").glob("*.json")) == []
    assert len([c for c in ssh_commands(devpod) if "__DEVENV_RUN=" in c and "kill" not in c]) == 1  # not run again
