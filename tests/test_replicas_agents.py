"""Agent runs across replicas (``DEVENV_STATE_BACKEND=kubernetes``, issue 12): the one-agent rule held by
a Lease per workspace's run, recovery that spares live replicas' runs and concludes those of a replica
that died, and a stop on one replica ending the run another runs.

Real parts at the boundaries: two bots in this process (or one in a process of its own, to be killed)
sharing one Kubernetes fake, the GitHub emulator, the stand-in devpod and the stand-in ``claude``.
"""

from __future__ import annotations

import asyncio
import signal

import aiohttp
import pytest

from bot.replicas.agents import agent_lease
from tests import payloads
from tests.eventually import eventually
from tests.replicas import cluster, in_process_environ, in_process_replicas
from tests.test_agent_e2e import NUMBER, OWNER, REPO, SAMPLES, WS, agent_call, agent_checks, command, finish, replies
from tests.test_agent_lifecycle import agent_at_work, alive, signals_sent
from tests.test_agent_lifecycle import environ as agent_environ  # noqa: F401  (the fixture: stand-in claude)
from tests.test_process import post, spawn
from tests.test_setup import free_port, wait_ready

pytestmark = pytest.mark.skipif(not SAMPLES.is_dir(), reason=f"no Claude Code stream samples at {SAMPLES}")

NS = "devenv-bot"
ALREADY_GOING = "the agent was not started: an agent run is already going in this environment"
RESTARTED = "devenv-bot restarted while this agent run was going"


@pytest.fixture
def kube():
    """The Kubernetes fake enforcing deploy/'s RBAC: the agent Leases need no verb beyond get, create, update."""
    fake = cluster()
    try:
        yield fake
    finally:
        fake.close()
    assert not fake.forbidden, "the replicas needed more than deploy/ grants:\n" + "\n".join(fake.forbidden)
    fake.assert_valid()


@pytest.fixture
def replica_environ(agent_environ, kube, tmp_path):  # noqa: F811
    return in_process_environ(agent_environ, kube, tmp_path)


@pytest.fixture
async def replicas(replica_environ, repo):
    async with in_process_replicas(replica_environ) as start:
        yield start


async def agent_pid(devpod) -> int:
    """The stand-in agent's pid, once its call file is written whole."""
    def read() -> int | None:
        try:
            return agent_call(devpod)["pid"]
        except (OSError, ValueError):
            return None
    await eventually(lambda: read() is not None, what="the agent's call file")
    return read()


def reactions_to(github, payload: dict) -> list[str]:
    return [r["content"] for r in github.reactions(OWNER, REPO, payload["comment"]["id"])]


async def stop_agent(server, github) -> None:
    await server.deliver("issue_comment", command(github, "/devenv agent stop"))
    await finish(server)


async def test_a_second_run_on_another_replica_is_refused_while_one_runs(replicas, github, devpod, kube):
    one, two = await replicas(1), await replicas(2)
    await agent_at_work(one, github, devpod)
    assert kube.get("leases", NS, agent_lease(WS))["spec"]["holderIdentity"] == "replica-1"
    github.set_permission(OWNER, REPO, "hubot", "write")
    second = command(github, '/devenv agent run "something else"', user="hubot")
    await two.deliver("issue_comment", second)
    await two.settle()
    [refusal] = replies(github)
    assert refusal.startswith(f"@hubot, {ALREADY_GOING}")
    assert "asked by Codertocat" in refusal and "`/devenv agent stop`" in refusal
    assert reactions_to(github, second) == ["confused"]
    assert len(agent_checks(github)) == 1 and two.bot.agent_runs.runs == {}
    await stop_agent(one, github)
    # the run's end lets the Lease go: the other replica may run one now
    assert not kube.get("leases", NS, agent_lease(WS))["spec"].get("holderIdentity")
    third = command(github, '/devenv agent run "Say hello"', user="hubot")
    await two.deliver("issue_comment", third)
    await finish(two)
    assert [c["conclusion"] for c in agent_checks(github)] == ["cancelled", "success"]
    assert reactions_to(github, third) == ["eyes", "rocket"]


async def test_a_replica_starting_while_another_runs_an_agent_leaves_that_run_alone(replicas, github, devpod):
    one = await replicas(1)
    payload = await agent_at_work(one, github, devpod)
    pid = await agent_pid(devpod)
    two = await replicas(2)  # as in a rolling upgrade: its start-up recovery runs now
    await two.bot.agent_runs.recover()  # and a leader's round would do the same
    await two.bot.agent_runs.idle()
    await asyncio.sleep(1.5)  # a renewal of the run's Lease, for good measure
    assert agent_checks(github)[0]["status"] == "in_progress"
    assert not any(RESTARTED in r for r in replies(github)) and reactions_to(github, payload) == ["eyes"]
    assert signals_sent(devpod) == [] and alive(pid)
    assert one.bot.agent_runs.runs
    await stop_agent(one, github)
    [check] = agent_checks(github)
    assert check["conclusion"] == "cancelled" and "stopped cleanly" in check["output"]["summary"]


async def test_a_devenv_stop_on_one_replica_ends_the_run_another_replica_runs(replicas, github, devpod):
    one, two = await replicas(1), await replicas(2)
    payload = await agent_at_work(one, github, devpod)
    pid = await agent_pid(devpod)
    github.set_permission(OWNER, REPO, "hubot", "write")
    stop = command(github, "/devenv stop", user="hubot")
    await two.deliver("issue_comment", stop)
    # Without the mark, replica 1's `devpod ssh` hangs once replica 2 stops the container: its check run
    # would stay in progress until the agent's time limit.
    await eventually(lambda: agent_checks(github)[0]["status"] == "completed", timeout=20,
                     what="the agent check run to conclude")
    await finish(one)
    await two.settle()
    [check] = agent_checks(github)
    assert check["conclusion"] == "cancelled"
    assert "being stopped (hubot ran `/devenv stop`)" in check["output"]["summary"]
    assert any("being stopped (hubot ran `/devenv stop`)" in r for r in replies(github))
    assert reactions_to(github, payload) == ["eyes", "confused"]
    assert one.bot.agent_runs.runs == {}
    await eventually(lambda: two.bot.environments.records[WS].state == "stopped", what="the stop done")
    assert devpod.cluster(WS)["pod"] is None
    stop_call = devpod.calls("stop")[0]
    assert all(c["time"] < stop_call["time"] for c in devpod.calls("ssh"))  # the run ended before DevPod stopped
    await eventually(lambda: not alive(pid), what="the agent process gone")


async def test_agent_stop_on_one_replica_stops_the_run_another_replica_runs(replicas, github, devpod):
    one, two = await replicas(1), await replicas(2)
    payload = await agent_at_work(one, github, devpod)
    github.set_permission(OWNER, REPO, "hubot", "write")
    stop = command(github, "/devenv agent stop", user="hubot")
    await two.deliver("issue_comment", stop)
    await two.settle()
    await eventually(lambda: agent_checks(github)[0]["status"] == "completed", timeout=20,
                     what="the agent check run to conclude")
    await finish(one)
    [check] = agent_checks(github)
    assert check["conclusion"] == "cancelled" and "stopped cleanly" in check["output"]["summary"]
    assert "hubot" in check["output"]["summary"]  # who stopped it
    assert not any("no agent is running" in r for r in replies(github))
    assert reactions_to(github, stop) == ["eyes", "rocket"] and reactions_to(github, payload) == ["eyes", "confused"]
    [sent] = signals_sent(devpod)  # interrupted as if asked on its own replica
    assert "kill -s INT " in sent and "__DEVENV_RUN=" in sent
    assert one.bot.agent_runs.runs == {} and two.bot.agent_runs.runs == {}


@pytest.mark.slow
async def test_a_run_whose_replica_died_is_concluded_by_another_once_its_lease_expired(
        replica_environ, replicas, repo, github, devpod, kube, tmp_path):
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    github.set_permission(OWNER, REPO, "Codertocat", "admin")
    (tmp_path / "replica-0").mkdir()
    first = spawn({**replica_environ(0), "PORT": str(port)}, tmp_path / "replica-0", "serve")
    try:
        async with aiohttp.ClientSession() as session:
            await wait_ready(session, url, 200, timeout=60)
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
        pid = await agent_pid(devpod)
        two = await replicas(2)  # replica 0 is alive: its run is left alone
        await two.bot.agent_runs.idle()
        assert agent_checks(github)[0]["status"] == "in_progress" and alive(pid)
        first.send_signal(signal.SIGKILL)  # replica 0 vanishes; its Leases are no longer renewed
        await asyncio.to_thread(first.communicate, timeout=10)
        await eventually(lambda: agent_checks(github)[0]["status"] == "completed", timeout=30,
                         what="the dead replica's run concluded by the other")
        await eventually(lambda: not alive(pid), timeout=30, what="the orphaned agent to be stopped")
        await eventually(lambda: "confused" in [r["content"] for r in github.reactions(OWNER, REPO, comment["id"])],
                         timeout=30, what="the 😕 on the command")
        await two.bot.agent_runs.idle()
        assert two.bot.leader.is_leader()
    finally:
        if first.poll() is None:
            first.send_signal(signal.SIGKILL)
            await asyncio.to_thread(first.communicate, timeout=10)
    [check] = agent_checks(github)
    assert check["conclusion"] == "cancelled" and check["output"]["title"] == "The agent run was interrupted by a bot restart"
    [final] = replies(github)  # once, to the requester
    assert final.startswith("@Codertocat, the agent run you asked for was cancelled") and RESTARTED in final
    kills = signals_sent(devpod)
    assert kills and "kill -s INT " in kills[0]  # the orphan was interrupted by its run id
    assert kube.get("devenvironments", NS, WS)["spec"]["agentRuns"] == {}
