"""Several replicas, one job: real `devenv-bot serve` processes sharing one cluster (tests/replicas.py).

A delivery may reach any replica; with DEVENV_STATE_BACKEND=kubernetes each one decides on the
record as the cluster holds it. With each replica's own state directory instead (the file backend),
the second replica would not know the PR: it would post a second sticky comment and lose the
first one's history.
"""

from __future__ import annotations

import pytest

from bot.environments.journal import EnvRecord
from tests import payloads
from tests.eventually import eventually
from tests.observe import devenv_runs, sticky
from tests.replicas import NAMESPACE, Replicas, cluster
from tests.test_commands_e2e import OWNER, REPO, WS, command

pytestmark = pytest.mark.slow


@pytest.fixture
def rbac_cluster():
    fake = cluster()  # the base and components/replicas, as docs/operations.md says replicas need
    try:
        yield fake
    finally:
        fake.close()
    assert not fake.forbidden, "the replicas needed more than deploy/ grants:\n" + "\n".join(fake.forbidden)
    fake.assert_valid()


def stored(kube) -> dict | None:
    return kube.get("devenvironments", NAMESPACE, WS)


def state(kube) -> str | None:
    obj = stored(kube)
    return obj["spec"]["state"] if obj else None


async def test_any_replica_takes_any_delivery_on_one_record(repo, github, devpod, rbac_cluster, tmp_path):
    kube = rbac_cluster
    head = payloads.pull_request("opened")["pull_request"]["head"]["sha"]
    github.set_permission(OWNER, REPO, "Codertocat", "write")
    async with Replicas(github, devpod, kube, tmp_path, count=2) as replicas:
        # Opened, delivered to replica 0: it creates the environment.
        assert await replicas.deliver(0, "pull_request", payloads.pull_request("opened")) == 202
        await eventually(lambda: state(kube) == "running" and devenv_runs(github)
                         and devenv_runs(github)[-1]["status"] == "completed", timeout=60, what="the environment up")
        assert stored(kube)["spec"]["replica"] == "replica-0"

        # /devenv stop, delivered to replica 1, which never saw the PR: it stops that environment.
        assert await replicas.deliver(1, "issue_comment", command(github, "/devenv stop")) == 202
        await eventually(lambda: state(kube) == "stopped" and devpod.calls("stop"), timeout=60,
                         what="the environment stopped by replica 1")
        assert stored(kube)["spec"]["replica"] == "replica-1"

        # /devenv status, delivered to replica 0 again: it shows the truth, not what it last knew.
        assert await replicas.deliver(0, "issue_comment", command(github, "/devenv status")) == 202
        await eventually(lambda: len(devpod.calls("status")) >= 1 and any(
            a.verb == "status" and a.outcome != "queued"
            for a in EnvRecord.from_json(stored(kube)["spec"]["record"]).history), timeout=60, what="the status")
        await eventually(lambda: "stop" in sticky(github).lower(), timeout=30, what="the comment to say stopped")

    obj = stored(kube)
    assert {k: obj["spec"][k] for k in ("repository", "pr", "state", "head")} == {
        "repository": f"{OWNER}/{REPO}", "pr": payloads.PR_NUMBER, "state": "stopped", "head": head[:12]}
    record = EnvRecord.from_json(obj["spec"]["record"])
    assert [a.verb for a in record.history][-2:] == ["stop", "status"]  # one record, every replica's actions
    assert record.op is None and record.pending == []
    sticky(github)  # exactly one sticky comment: replica 1 edited replica 0's
    assert len(devpod.calls("up")) == 1 and len(devpod.calls("stop")) == 1
    assert {v for g, r, v in kube.exercised if r == "devenvironments"} >= {"list", "get", "create", "update"}
    github.assert_valid()
