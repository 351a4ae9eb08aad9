"""Several replicas, one job: real `devenv-bot serve` processes sharing one cluster (tests/replicas.py).

A delivery may reach any replica; with DEVENV_STATE_BACKEND=kubernetes each one decides on the
record as the cluster holds it. With each replica's own state directory instead (the file backend),
the second replica would not know the PR: it would post a second sticky comment and lose the
first one's history.

Each replica has its own DEVPOD_HOME (DevPod's state of a workspace reaches another replica through the
cluster's Secret), a SIGKILLed replica's operation is taken over by another once its Lease expires, a
delivery sent to two replicas is acted on once, and a sign-in may hop between replicas.
"""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any
from urllib.parse import urlsplit

import pytest

from bot.environments.journal import EnvRecord
from tests import payloads
from tests.eventually import eventually
from tests.observe import devenv_runs, sticky
from tests.replicas import NAMESPACE, Replicas, cluster
from tests.test_access import DOMAIN, IDE, PUBLIC, Browser
from tests.test_check_runs_e2e import DELETED, READY, STOPPED
from tests.test_commands_e2e import OWNER, REPO, WS, command
from tests.test_deploy import bot_config, render

pytestmark = pytest.mark.slow


@pytest.fixture
def variants() -> tuple[str, ...]:
    """The deploy/ variants whose RBAC the fake enforces (tests that need links add a router's overlay)."""
    return ("all-components",)  # the base and components/replicas, as docs/operations.md says replicas need


@pytest.fixture
def rbac_cluster(variants):
    fake = cluster(*variants)
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


# ---------------------------------------------------------------------------------------- own DevPod homes


def shown(github) -> tuple:
    """The head's one ``devenv`` check run as a person sees it: status, conclusion, title, buttons."""
    runs = devenv_runs(github)
    assert len(runs) == 1, f"one check run per head, found {len(runs)}"
    [run] = runs
    return run["status"], run["conclusion"], run["output"]["title"], [a["label"] for a in run.get("actions") or []]


def volumes(devpod) -> list[str]:
    """The stand-in cluster's workspace volumes (one per workspace UID ever created)."""
    root = devpod.home / "standin-cluster"
    return sorted(p.stem for p in root.glob("*.json")) if root.exists() else []


def settled(kube, github, want: str, shows: tuple) -> bool:
    runs = devenv_runs(github)
    return state(kube) == want and len(runs) == 1 and shown(github) == shows


async def test_three_replicas_with_their_own_devpod_homes_take_turns_on_one_workspace(
        repo, github, devpod, rbac_cluster, tmp_path):
    kube = rbac_cluster
    github.set_permission(OWNER, REPO, "Codertocat", "write")
    async with Replicas(github, devpod, kube, tmp_path, count=3) as replicas:
        homes = replicas.devpods
        assert len({h.home for h in homes}) == 3 and devpod.home not in {h.home for h in homes}

        assert await replicas.deliver(0, "pull_request", payloads.pull_request("opened")) == 202
        await eventually(lambda: settled(kube, github, "running", READY), timeout=60, what="replica 0's up")
        uid = homes[0].workspace(WS)["uid"]
        assert homes[1].workspace(WS) is None and homes[2].workspace(WS) is None

        # replica 1 never had this workspace in its home: it acts on the state kept in the cluster
        assert await replicas.deliver(1, "issue_comment", command(github, "/devenv stop")) == 202
        await eventually(lambda: settled(kube, github, "stopped", STOPPED), timeout=60, what="replica 1's stop")
        assert stored(kube)["spec"]["replica"] == "replica-1"
        assert homes[1].workspace(WS)["uid"] == uid  # restored, not made anew

        assert await replicas.deliver(2, "issue_comment", command(github, "/devenv up")) == 202
        await eventually(lambda: settled(kube, github, "running", READY), timeout=60, what="replica 2's wake")
        assert stored(kube)["spec"]["replica"] == "replica-2"
        assert homes[2].workspace(WS)["uid"] == uid
        assert volumes(devpod) == [uid]  # the same volume woken, no second one

        assert await replicas.deliver(0, "issue_comment", command(github, "/devenv delete")) == 202
        await eventually(lambda: settled(kube, github, "deleted", DELETED) or (
            stored(kube) is None and shown(github) == DELETED), timeout=60, what="replica 0's delete")
        assert volumes(devpod) == [] and homes[0].workspace(WS) is None

    assert [len(devpod.calls(c)) for c in ("up", "stop", "delete")] == [2, 1, 1]
    assert len(devpod.op_spans()) == 4  # the rig's one ops log holds every replica's runs
    devpod.assert_no_overlap()  # no two processes, of any replica, ran on the workspace at once
    assert "deleted" in sticky(github).lower()  # one sticky comment, edited by every replica in turn
    github.assert_valid()


# ---------------------------------------------------------------------------------------- SIGKILL


async def test_an_up_whose_replica_is_sigkilled_is_taken_over_and_concluded(repo, github, devpod, rbac_cluster,
                                                                          tmp_path):
    kube = rbac_cluster
    github.set_permission(OWNER, REPO, "Codertocat", "write")
    async with Replicas(github, devpod, kube, tmp_path, count=2, DEVENV_LEASE_DURATION="3") as replicas:
        replicas.devpods[0].inject(command="up", hang=True)  # replica 0's DevPod hangs; replica 1's would not
        assert await replicas.deliver(0, "pull_request", payloads.pull_request("opened")) == 202
        await eventually(lambda: replicas.devpods[0].hanging(), timeout=30, what="replica 0's DevPod running up")
        await eventually(lambda: devenv_runs(github)[-1]["status"] == "in_progress", timeout=10, what="in progress")
        killed = replicas.kill(0)
        assert len(killed) >= 2  # the replica and its DevPod

        await eventually(lambda: devenv_runs(github)[-1]["status"] == "completed", timeout=30,
                         what="the check run concluded by replica 1")
        assert shown(github) == READY
        assert stored(kube)["spec"]["replica"] == "replica-1" and state(kube) == "running"
        await eventually(lambda: "**State:** 🟢 Running" in sticky(github)
                         and "`up` asked by Codertocat — succeeded" in sticky(github), timeout=15,
                         what="the comment to say the environment runs, the up succeeded")

    assert len(devpod.calls("up")) == 2  # the killed one and the one taken over
    killed_up, taken_up = devpod.op_spans()
    assert killed_up["end"] is not None and killed_up["end"] <= taken_up["start"]  # the Lease waited out the kill
    devpod.assert_no_overlap()  # replica 1 waited for the Lease: it never ran while replica 0's DevPod did
    assert volumes(devpod) == [replicas.devpods[1].workspace(WS)["uid"]]
    github.assert_valid()


# ---------------------------------------------------------------------------------------- one delivery, twice


async def test_one_delivery_sent_to_two_replicas_is_acted_on_once(repo, github, devpod, rbac_cluster, tmp_path):
    kube = rbac_cluster
    github.set_permission(OWNER, REPO, "Codertocat", "write")
    async with Replicas(github, devpod, kube, tmp_path, count=2) as replicas:
        payload = payloads.pull_request("opened")
        statuses = await asyncio.gather(*(replicas.deliver(i, "pull_request", payload, delivery="same-delivery-1")
                                          for i in (0, 1)))
        assert sorted(statuses) == [200, 202]  # one acts, the other answers "duplicate"
        await eventually(lambda: settled(kube, github, "running", READY), timeout=60, what="the up")
        # and again later, to either replica: GitHub's redelivery of a handled delivery
        assert await replicas.deliver(statuses.index(200), "pull_request", payload, delivery="same-delivery-1") == 200

    assert len(devpod.calls("up")) == 1 and len(github.check_runs(OWNER, REPO)) == 1
    sticky(github)
    github.assert_valid()


# ---------------------------------------------------------------------------------------- sign-in


class Routed(Browser):
    """A browser whose requests reach the replica ``route`` names for their path (else replica 0), as a Service
    in front of the replicas may send each one anywhere."""

    def __init__(self, replicas: Replicas, github, route: dict[str, int]) -> None:
        super().__init__(self.at(replicas, 0), github)
        self.replicas, self.route = replicas, route

    @staticmethod
    def at(replicas: Replicas, index: int) -> Any:
        return SimpleNamespace(url=replicas.urls[index], session=replicas.session)

    async def get(self, url, headers=None):
        self.server = self.at(self.replicas, self.route.get(urlsplit(url).path, 0))
        return await super().get(url, headers)


#: The links' settings of deploy/overlays/ingress-nginx (its host names aside: the tests' are the emulated browser's).
LINK_SETTINGS = ("DEVENV_NAMESPACE", "DEVENV_AUTH_URL", "DEVENV_BOT_SERVICE", "DEVENV_INGRESS_CLASS", "DEVENV_ROUTER")


@pytest.mark.parametrize("variants", [("all-components", "ingress-nginx")])
async def test_a_sign_in_started_on_one_replica_process_completes_on_another(repo, github, devpod, rbac_cluster,
                                                                            tmp_path):
    kube = rbac_cluster
    github.set_permission(OWNER, REPO, "Codertocat", "write")
    links = {k: v for k, v in bot_config(render("ingress-nginx")).items() if k in LINK_SETTINGS}
    links.update(DEVENV_PREVIEW_DOMAIN=DOMAIN, DEVENV_PUBLIC_URL=PUBLIC, DEVENV_AUTH_SIGNIN=f"{PUBLIC}/auth/login")
    async with Replicas(github, devpod, kube, tmp_path, count=2, **links) as replicas:
        assert await replicas.deliver(0, "pull_request", payloads.pull_request("opened")) == 202
        await eventually(lambda: settled(kube, github, "running", READY), timeout=60, what="the environment up")

        github.oauth_login = "Codertocat"
        # the login and the handoff on replica 0, GitHub's callback on replica 1
        b = Routed(replicas, github, {"/auth/callback": 1})
        status, url, text = await b.sign_in(f"https://{IDE}/")
        assert (status, url) == (200, f"https://{IDE}/"), text
        assert IDE in b.jar
        # the proxy's access check (nginx's and Traefik's), answered the same by either replica
        stranger = Routed(replicas, github, {})
        for index in (1, 0):
            b.server = stranger.server = Routed.at(replicas, index)
            for style in ("nginx", "traefik"):
                answer = await b.check(f"https://{IDE}/", style=style)
                assert answer[0] == 200 and answer[1]["X-Devenv-User"] == "Codertocat", (index, style, answer[2])
            assert (await stranger.check(f"https://{IDE}/"))[0] == 401  # no cookie: sign in first
        # a handoff code is used once, whichever replica sees it again
        [handoff] = [u for u in b.locations if "/_devenv/handoff" in u]
        replay = Routed(replicas, github, {"/_devenv/handoff": 1})
        status, _, text = await replay.get(handoff)
        assert status == 400 and "already used" in text and IDE not in replay.jar
    github.assert_valid()
