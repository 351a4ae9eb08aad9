"""DevPod's state of a workspace kept in the cluster: any replica, with its own DEVPOD_HOME, acts on it.

Two :class:`Operations`, each with its own DEVPOD_HOME, share one fake Kubernetes API and one stand-in
"cluster" (the stand-in's pods and volumes), as two replicas of the bot do.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import time
from pathlib import Path

import pytest
from kubernetes.client import ApiClient, Configuration

from bot import devpod
from bot.cluster.kube import KubeApi
from bot.devpod import DevPodSettings
from bot.environments.journal import EnvRecord, Op
from bot.environments.operations import Operations
from bot.environments.states import Event
from bot.replicas import devpod_state
from bot.replicas.devpod_state import ClusterDevPodState
from tests.devpod_rig import TOKEN
from tests.k8s_fake.fixtures import kube  # noqa: F401  (fixture)
from tests.standin import DevPodStandIn

WS = "hello-world-pr1-abcdef"
NAMESPACE = "devenv-bot"
SECRET = devpod_state.secret_name(WS)


class Replica:
    def __init__(self, tmp_path: Path, name: str, kube_url: str, *, cluster: bool = True) -> None:
        self.standin = DevPodStandIn(tmp_path / name, provider_configured=True)
        (self.standin.home / "standin-shared-cluster").write_text(str(tmp_path / "cluster"))
        self.dp = DevPodSettings(home=self.standin.home, binary=str(self.standin.binary),
                                 path=self.standin.search_path, kill_grace=0.5, namespace="devenv")
        devpod.prepare_dirs(self.dp)
        self.api = KubeApi(ApiClient(Configuration(host=kube_url)), NAMESPACE, retries=0)
        self.state = ClusterDevPodState(self.api, self.dp.home, self.dp.context) if cluster else devpod_state.LOCAL
        self.ops = Operations(self.dp, github_url="https://github.com", state=self.state)

    def uid(self) -> str | None:
        path = self.dp.home / "contexts" / "default" / "workspaces" / WS / "workspace.json"
        return json.loads(path.read_text())["uid"] if path.exists() else None

    async def step(self, record: EnvRecord, kind: str):
        return await self.ops.step(record, Op(kind, record.head_sha, "octocat", time.time()), lambda line: None)


def record() -> EnvRecord:
    return EnvRecord(ws_id=WS, installation_id=1, owner="Codertocat", repo="Hello-World", number=1, head_sha="a" * 40)


@pytest.fixture
async def replicas(tmp_path, kube):  # noqa: F811
    one, other = Replica(tmp_path, "one", kube.url), Replica(tmp_path, "other", kube.url)
    yield one, other
    await one.api.close()
    await other.api.close()


async def built(replica: Replica) -> EnvRecord:
    rec = record()
    outcome = await replica.step(rec, "up")
    assert outcome.event is Event.BUILT, outcome
    rec.env_sha = outcome.env_sha
    return rec


async def test_another_replica_with_an_empty_home_acts_on_the_same_workspace_with_the_same_uid(replicas, kube):
    one, other = replicas
    rec = await built(one)
    uid = one.uid()
    assert uid and kube.get("secrets", NAMESPACE, SECRET) is not None
    assert other.uid() is None  # nothing in the other replica's home yet

    assert (await other.step(rec, "status")).event is Event.FOUND_RUNNING
    assert other.uid() == uid  # restored, not made anew
    assert (await other.step(rec, "stop")).event is Event.STOPPED
    blocked, _ = await other.ops.checkout_state(WS)  # ``devpod ssh`` on the restored state (it wakes it)
    assert blocked is False
    assert (await one.step(rec, "up")).event is Event.BUILT  # back on the first replica
    assert (await other.step(rec, "up")).event is Event.BUILT
    assert one.uid() == other.uid() == uid
    assert [c["argv"] for c in other.standin.calls("up")] and all(
        "--uid" not in c["argv"] for c in other.standin.calls("up"))
    assert (await other.step(rec, "delete")).event is Event.DELETED
    assert kube.get("secrets", NAMESPACE, SECRET) is None  # the kept state goes with the workspace
    rec.env_sha = None  # as the executor leaves a deleted environment's record
    assert (await one.step(rec, "status")).event is Event.FOUND_MISSING  # the first replica knows it is gone
    assert one.uid() is None  # its stale copy went


async def test_without_kept_state_a_second_home_would_make_a_new_uid(tmp_path, kube):  # noqa: F811
    # Why the restore matters: DevPod (and the stand-in) make a new workspace, a new volume, from an empty home.
    one, other = (Replica(tmp_path, name, kube.url, cluster=False) for name in ("one", "other"))
    try:
        rec = await built(one)
        assert (await other.step(rec, "up")).event is Event.BUILT
        assert one.uid() and other.uid() and one.uid() != other.uid()
    finally:
        await one.api.close()
        await other.api.close()


async def test_a_built_workspace_whose_state_is_missing_is_not_created_anew(replicas, kube):
    one, other = replicas
    rec = await built(one)
    await one.api.delete(devpod_state.SECRET_KIND, SECRET)
    outcome = await other.step(rec, "up")
    assert outcome.conclusion == "failure" and outcome.event is Event.FAILED
    assert "missing from the cluster" in outcome.errors[0] and "new volume" in outcome.errors[0]
    assert other.standin.calls("up") == [] and other.uid() is None  # DevPod never ran
    stop = await other.step(rec, "stop")
    assert stop.event is Event.STOP_FAILED and other.standin.calls("stop") == []


async def test_an_unreadable_kept_state_fails_the_operation_clearly(replicas, kube):
    one, other = replicas
    rec = await built(one)
    secret = kube.get("secrets", NAMESPACE, SECRET)
    secret["data"][devpod_state.DATA_KEY] = base64.b64encode(b"not a tar").decode()
    assert await one.api.replace(devpod_state.SECRET_KIND, SECRET, secret)
    outcome = await other.step(rec, "up")
    assert outcome.event is Event.FAILED and "is unreadable" in outcome.errors[0]
    assert other.standin.calls("up") == []


async def test_no_credential_reaches_the_kept_state(replicas, kube):
    one, _ = replicas
    rec = await built(one)
    result = one.dp.home / "contexts" / "default" / "workspaces" / WS / "workspace_result.json"
    one.state.secrets = lambda: ["n0nce-xyz"]

    def leak(line) -> None:  # while DevPod runs: a token the scrubber missed, and a secret the caller names
        written = json.loads(result.read_text())
        written["SubstitutionContext"]["Env"].update(LEAK=TOKEN, NONCE="n0nce-xyz")
        result.write_text(json.dumps(written))

    assert (await one.ops.step(rec, Op("stop", rec.head_sha, "octocat", time.time()), leak)).event is Event.STOPPED
    data = base64.b64decode(kube.get("secrets", NAMESPACE, SECRET)["data"][devpod_state.DATA_KEY])
    files = devpod_state.unpack(data, [devpod_state.PurePosixPath("contexts"), devpod_state.PurePosixPath("agent")])
    kept = b"".join(files.values())
    assert b"LEAK" in kept and TOKEN.encode() not in kept and b"n0nce-xyz" not in kept
    assert len(data) <= devpod_state.MAX_BYTES


async def test_an_untrusted_workspace_restored_without_its_clone_is_cloned_again_not_started_as_it_is(replicas):
    # What the workspace holds is known from DevPod's clone on the replica that built it; another replica
    # has only the restored state, so it re-clones (and checks the clone) instead of starting it blind.
    one, other = replicas
    approved = "b" * 40
    for replica in (one, other):
        replica.standin.set_refs("Codertocat/Hello-World", {"refs/pull/1/head": approved})
    rec = dataclasses.replace(record(), trusted=False, approved_sha=approved)
    rec = await built_from(one, rec)
    assert rec.env_sha == approved
    assert (await other.step(rec, "up")).event is Event.BUILT
    [call] = other.standin.calls("up")
    assert "--reset=true" in call["argv"]
    assert (await other.step(rec, "up")).event is Event.BUILT  # its own clone now: started as it is
    assert "--reset=true" not in other.standin.calls("up")[-1]["argv"]


async def built_from(replica: Replica, rec: EnvRecord) -> EnvRecord:
    outcome = await replica.step(rec, "up")
    assert outcome.event is Event.BUILT, outcome
    return dataclasses.replace(rec, env_sha=outcome.env_sha)


async def test_the_gateway_s_and_the_agent_s_devpod_ssh_run_on_the_restored_state(replicas, kube):
    # bot/gateway/service.py (ready) and bot/agent (runs, recovery) call ``restored`` before their own devpod ssh.
    one, other = replicas
    await built(one)
    argv = devpod.ssh_command_argv(other.dp, WS, "echo hello")
    before = await devpod.run(argv, settings=other.dp, timeout=20, masker=devpod.Masker())
    assert not before.ok and "doesn't exist" in before.lines[-1].message  # DevPod knows nothing of it here
    assert await devpod_state.restored(other.state, WS) is None
    after = await devpod.run(argv, settings=other.dp, timeout=20, masker=devpod.Masker())
    assert after.ok and "hello" in after.stdout
    await one.api.delete(devpod_state.SECRET_KIND, SECRET)
    fresh = Replica(other.dp.home.parent, "third", kube.url)
    try:
        problem = await devpod_state.restored(fresh.state, WS)
        assert problem is not None and "missing from the cluster" in problem  # the connection is refused with it
    finally:
        await fresh.api.close()
