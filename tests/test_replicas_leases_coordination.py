"""Replicas sharing work through Leases (``DEVENV_STATE_BACKEND=kubernetes``): two real bots on one
Kubernetes fake, one GitHub emulator and one stand-in devpod. One operation per workspace across them,
the cluster-wide DevPod cap, and the takeover of an operation whose replica is gone; the leader hand-over
on injected clocks. The stand-in logs every run's start and end before DevPod's own workspace lock
(``DevPodStandIn.overlaps``), so an overlap the bot allowed is seen even though DevPod would serialise it.
"""

from __future__ import annotations

import asyncio
import time
from types import SimpleNamespace

import pytest
from kubernetes.client import ApiClient, Configuration

from bot.cluster.kube import KubeApi
from bot.devpod import workspace_id
from bot.environments.journal import EnvRecord, Op, PullInfo, open_journal
from bot.environments.reaper import IdleReaper
from bot.environments.states import State
from bot.replicas.coordination import workspace_lease
from bot.replicas.leader import LEADER_LEASE, LeaderElection
from bot.replicas.leases import Leases, format_micro
from bot.settings import config
from tests import payloads
from tests.botserver import BotServer
from tests.eventually import eventually
from tests.observe import devenv_runs as checks
from tests.replicas import in_process_environ, in_process_replicas

NS = "devenv-bot"  # the bot's own namespace, where the Leases live
OWNER, REPO, NUMBER = "Codertocat", "Hello-World", payloads.PR_NUMBER
WS = workspace_id(OWNER, REPO, NUMBER)
OTHER_REPLICA = "Queued: another replica of devenv-bot is running an operation on this environment"
SLOTS_BUSY = "Queued: every DevPod slot of the cluster is busy"


@pytest.fixture
def replica_environ(environ, kube, tmp_path):
    return in_process_environ(environ, kube, tmp_path)


@pytest.fixture
async def replicas(replica_environ, repo):
    async with in_process_replicas(replica_environ) as start:
        yield start


def titles(github) -> list[str]:
    return [c.json.get("output", {}).get("title") for c in github.calls
            if "/check-runs" in c.path and c.method in ("POST", "PATCH") and c.json]


async def test_an_operation_waits_while_another_replica_holds_the_workspace_and_runs_after(
        replicas, github, devpod, kube):
    one, two = await replicas(1), await replicas(2)
    devpod.inject(command="up", sleep=2.5)
    await one.deliver("pull_request", payloads.pull_request("opened"))
    await eventually(lambda: len(devpod.calls("up")) == 1, what="replica 1's up started")
    assert kube.get("leases", NS, workspace_lease(WS))["spec"]["holderIdentity"] == "replica-1"
    await two.deliver("pull_request", payloads.pull_request("opened"))
    await eventually(lambda: OTHER_REPLICA in titles(github), what="replica 2 saying it waits")
    assert len(devpod.calls("up")) == 1  # replica 2 did not start DevPod on the workspace
    await one.settle()
    await two.settle()
    first, second = devpod.op_spans()
    assert first["end"] is not None and second["start"] >= first["end"]
    devpod.assert_no_overlap()
    assert all(c["conclusion"] == "success" for c in checks(github))
    lease = kube.get("leases", NS, workspace_lease(WS))["spec"]
    assert "holderIdentity" not in lease and lease["leaseTransitions"] == 0  # released after, not expired


async def test_the_devpod_cap_holds_across_replicas(replicas, github, devpod):
    one = await replicas(1, DEVENV_MAX_CONCURRENT_OPS="1")
    two = await replicas(2, DEVENV_MAX_CONCURRENT_OPS="1")
    other = payloads.pull_request("opened", number=NUMBER + 1)
    github.add_pull(OWNER, REPO, NUMBER + 1, head_sha=other["pull_request"]["head"]["sha"],
                    head_ref=other["pull_request"]["head"]["ref"], title="another")
    devpod.inject(command="up", sleep=2.5)
    await one.deliver("pull_request", payloads.pull_request("opened"))
    await eventually(lambda: len(devpod.calls("up")) == 1, what="replica 1's up started")
    await two.deliver("pull_request", other)  # another workspace: only the cap can hold it back
    await eventually(lambda: SLOTS_BUSY in titles(github), what="replica 2 waiting for a slot")
    await one.settle()
    await two.settle()
    first, second = sorted(devpod.op_spans(), key=lambda s: s["start"])
    assert first["ws"] != second["ws"] and second["start"] >= first["end"]
    assert all(c["conclusion"] == "success" for c in checks(github))


async def test_an_operation_whose_replica_vanished_is_taken_over_and_concluded(
        replica_environ, repo, github, devpod, kube, tmp_path):
    """Replica 0 took an ``up`` and died (SIGKILL): its record says the up runs, its workspace Lease is
    no longer renewed. The leader resumes it only once the Lease has expired, and concludes it."""
    now = time.time()
    pr = payloads.pull_request("opened")
    info = PullInfo.from_payload(payloads.INSTALLATION_ID, pr["pull_request"], pr["repository"])
    record = EnvRecord(ws_id=WS, installation_id=payloads.INSTALLATION_ID, owner=OWNER, repo=REPO, number=NUMBER,
                       head_sha=info.head_sha, state=State.CREATING, updated_at=now,
                       op=Op(kind="up", head_sha=info.head_sha, requested_by="octocat", requested_at=now))
    open_journal(config.load(replica_environ(2))).save(record)  # as the dead replica left it, in the cluster
    kube.put_object("leases", NS, {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                                   "metadata": {"name": workspace_lease(WS)},
                                   "spec": {"holderIdentity": "replica-0", "leaseDurationSeconds": 3,
                                            "renewTime": format_micro(now), "acquireTime": format_micro(now)}})
    server = await BotServer(config.load(replica_environ(2))).start()
    try:
        assert server.bot.leader.is_leader()  # its first takeover scan has run: it left the up alone
        assert not server.bot.environments.busy(WS)
        assert await server.bot.environments.take_over() == []  # its holder may still be alive
        assert devpod.calls("up") == [] and not server.bot.environments.busy(WS)
        await eventually(lambda: devpod.calls("up"), what="the up taken over", timeout=10)
        await eventually(lambda: checks(github) and checks(github)[-1].get("conclusion") == "success",
                         what="the taken-over up concluded")
        await server.settle()
        assert server.bot.environments.records[WS].state == State.RUNNING
        assert kube.get("leases", NS, workspace_lease(WS))["spec"]["leaseTransitions"] == 1
    finally:
        await server.stop()


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


async def test_when_the_leader_stops_renewing_the_other_replica_runs_the_reaper(kube):
    clock = Clock()
    api = KubeApi(ApiClient(Configuration(host=kube.url)), NS)
    try:
        elections = [LeaderElection(Leases(api, f"replica-{n}", 15, clock=clock), timer=clock) for n in (1, 2)]
        idle = EnvRecord(ws_id=WS, installation_id=1, owner=OWNER, repo=REPO, number=NUMBER, head_sha="a" * 40,
                         state=State.RUNNING, updated_at=clock.now - 3 * 3600)
        asked: list[tuple[str, str]] = []
        manager = SimpleNamespace(records={WS: idle}, busy=lambda _: False,
                                  request=lambda info, kind, requested_by: asked.append((info.ref.number, kind)))
        reapers = [IdleReaper(manager, clock=clock, leader=e.is_leader) for e in elections]
        assert [await e.step() for e in elections] == [True, False]
        assert reapers[1].sweep() == [] and reapers[0].sweep() == [(WS, "stop")]
        clock.now += 10  # replica 1 dies: no more steps
        assert await elections[1].step() is False and reapers[1].sweep() == []
        clock.now += 6  # 16 s after its last renewal: the lease has expired
        assert not elections[0].is_leader()  # the old leader would stop acting on its own, too
        assert await elections[1].step() is True
        assert reapers[1].sweep() == [(WS, "stop")]
        assert kube.get("leases", NS, LEADER_LEASE)["spec"]["holderIdentity"] == "replica-2"
        assert asked == [(NUMBER, "stop"), (NUMBER, "stop")]
    finally:
        await api.close()


async def test_a_stopping_leader_hands_over_at_once(kube):
    clock = Clock()
    api = KubeApi(ApiClient(Configuration(host=kube.url)), NS)
    try:
        one, two = (LeaderElection(Leases(api, f"replica-{n}", 15, clock=clock), timer=clock) for n in (1, 2))
        elected: list[str] = []

        async def on_elected() -> None:
            elected.append("replica-2")
        two.on_elected.append(on_elected)
        assert await one.step() and not await two.step()
        await one.stop()
        assert await two.step() and elected == ["replica-2"]  # no expiry waited for
    finally:
        await api.close()
    await asyncio.sleep(0)


async def test_only_the_leader_catches_up():
    from bot.environments.catchup import CatchUp

    listed: list[tuple] = []

    class Lister:
        async def list_open(self, *repository):
            listed.append(repository)
            return SimpleNamespace(pulls={}, changed=False, calls=1)

    record = EnvRecord(ws_id=WS, installation_id=1, owner=OWNER, repo=REPO, number=NUMBER, head_sha="a" * 40)
    leading = [False]
    manager = SimpleNamespace(records={WS: record}, clock=time.time, busy=lambda _: False)
    catchup = CatchUp(manager, Lister(), policy=lambda _: None, leader=lambda: leading[0])
    await catchup.run_once()
    assert listed == [] and catchup.rounds == 0
    leading[0] = True
    await catchup.run_once()
    assert listed == [(1, OWNER, REPO)] and catchup.rounds == 1
