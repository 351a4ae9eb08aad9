"""Two replicas' environment services in one process, on one cluster store: each decides on the record
as the cluster holds it (EnvironmentManager.find / request read it first, Records.refresh)."""

from __future__ import annotations

import pytest

from bot.environments.journal import PullInfo
from bot.environments.states import State
from bot.settings import config
from tests import payloads
from tests.botserver import BotServer
from tests.test_commands_e2e import OWNER, REPO, command
from tests.test_replicas_store import NS


@pytest.fixture
async def two(environ, repo, kube, tmp_path):
    kubeconfig = str(kube.write_kubeconfig(tmp_path / "kubeconfig", NS))
    servers = []
    try:
        for index in range(2):
            env = {**environ, "DEVENV_STATE_BACKEND": "kubernetes", "DEVENV_REPLICA_ID": f"replica-{index}",
                   "KUBECONFIG": kubeconfig, "DEVENV_STATE_DIR": str(tmp_path / f"state-{index}")}
            servers.append(await BotServer(config.load(env)).start())
        yield servers
    finally:
        for server in servers:
            await server.stop()


def info() -> PullInfo:
    opened = payloads.pull_request("opened")
    return PullInfo.from_payload(payloads.INSTALLATION_ID, opened["pull_request"], opened["repository"])


async def test_a_replica_decides_on_what_another_replica_wrote(two, github, devpod):
    first, second = two
    github.set_permission(OWNER, REPO, "Codertocat", "write")
    await first.deliver("pull_request", payloads.pull_request("opened"))
    await first.settle()
    held = first.bot.environments.find(info())  # replica 0's own record, held by reference
    assert held is not None and held.state == State.RUNNING
    seen = second.bot.environments.find(info())  # a read-only path on replica 1: it reads the cluster
    assert seen is not None and (seen.state, seen.comment_id) == (State.RUNNING, held.comment_id)

    await second.deliver("issue_comment", command(github, "/devenv stop"))
    await second.settle()
    # Replica 0 is asked to build: it decides on "stopped" (so the build shows as queued), not on the
    # "running" it last knew, and the record it and its callers hold is that very object, updated.
    record = first.bot.environments.request(info(), "up", requested_by="Codertocat")
    assert record is held and held.state == State.QUEUED
    await first.settle()
    assert held.state == State.RUNNING and [a.verb for a in held.history][-2:] == ["stop", "up"]
    assert len(devpod.calls("stop")) == 1 and len(devpod.calls("up")) == 2
