"""One replica acts on each delivery: two real bot apps share a fake Kubernetes API (DEVENV_STATE_BACKEND=kubernetes).

A redelivery reaching the other replica is not acted on again once handled (or while in flight); one
whose handlers failed, or whose replica died mid-way, is. The markers stay bounded.
"""

from __future__ import annotations

import asyncio

import pytest
from kubernetes.client import ApiClient, Configuration

from bot.cluster.kube import KubeApi
from bot.replicas.deliveries import ClusterDeliveries
from bot.replicas.devpod_state import ClusterDevPodState
from bot.replicas.onceonly import ClusterUsedCodes
from bot.services import build
from bot.settings import config
from tests import payloads
from tests.botserver import BotServer
from tests.k8s_fake.fixtures import kube  # noqa: F401  (fixture)
from tests.test_access import Clock
from tests.test_webhooks import recording_router

NAMESPACE = "devenv-bot"


def replica_settings(environ, kube, tmp_path, name: str):  # noqa: F811
    env = {**environ, "DEVENV_STATE_BACKEND": "kubernetes", "DEVENV_REPLICA_ID": name,
           "DEVENV_STATE_DIR": str(tmp_path / f"state-{name}"),
           "KUBECONFIG": str(kube.write_kubeconfig(tmp_path / "kubeconfig", NAMESPACE))}
    return config.load(env)


async def replica(environ, kube, tmp_path, name: str, router) -> BotServer:  # noqa: F811
    settings = replica_settings(environ, kube, tmp_path, name)
    return await BotServer(settings, bot=build(settings, [router])).start()


def markers(kube) -> list[dict]:  # noqa: F811
    return [m for m in kube.objects("configmaps", NAMESPACE)
            if m["metadata"]["labels"].get("devenv.dev/marker") == "delivery"]


@pytest.fixture
async def pair(environ, kube, tmp_path, repo):  # noqa: F811
    seen_one: list = []
    seen_other: list = []
    gate = asyncio.Event()
    gate.set()
    one = await replica(environ, kube, tmp_path, "one", recording_router(seen_one, gate=gate))
    other = await replica(environ, kube, tmp_path, "other", recording_router(seen_other))
    yield one, other, seen_one, seen_other, gate
    gate.set()
    await one.stop()
    await other.stop()


async def test_a_delivery_handled_by_one_replica_is_not_acted_on_by_the_other(pair, kube):  # noqa: F811
    one, other, seen_one, seen_other, _ = pair
    payload = payloads.pull_request("opened")
    assert (await one.deliver("pull_request", payload, delivery="d-1"))[0] == 202
    await one.settle()
    status, answer = await other.deliver("pull_request", payload, delivery="d-1")  # redelivered, to the other
    await other.settle()
    assert status == 200 and "duplicate" in answer["message"]
    assert len(seen_one) == 1 and seen_other == []
    [marker] = markers(kube)
    assert marker["data"]["state"] == "handled" and marker["data"]["replica"] == "one"
    assert "d-1" not in str(marker["metadata"])  # the id is hashed into the name


async def test_a_delivery_in_flight_on_one_replica_is_a_duplicate_on_the_other(pair):
    one, other, seen_one, seen_other, gate = pair
    gate.clear()
    payload = payloads.pull_request("opened")
    assert (await one.deliver("pull_request", payload, delivery="d-slow"))[0] == 202
    assert (await other.deliver("pull_request", payload, delivery="d-slow"))[0] == 200
    gate.set()
    await one.settle()
    assert len(seen_one) == 1 and seen_other == []


async def test_a_delivery_whose_handlers_failed_is_acted_on_by_the_other_replica(environ, kube, tmp_path,  # noqa: F811
                                                                               repo):
    seen_one: list = []
    seen_other: list = []
    one = await replica(environ, kube, tmp_path, "one", recording_router(seen_one, fail=True))
    other = await replica(environ, kube, tmp_path, "other", recording_router(seen_other))
    try:
        payload = payloads.pull_request("opened")
        assert (await one.deliver("pull_request", payload, delivery="d-fail"))[0] == 202
        await one.settle()
        assert markers(kube) == []  # forgotten: a redelivery goes through
        status, answer = await other.deliver("pull_request", payload, delivery="d-fail")
        await other.settle()
    finally:
        await one.stop()
        await other.stop()
    assert status == 202 and answer["message"] == "accepted"
    assert [d for *_, d in seen_other] == ["d-fail"]


async def test_a_delivery_is_refused_with_503_when_the_cluster_cannot_say(pair, kube):  # noqa: F811
    one, _, seen_one, _, _ = pair
    kube.inject("POST", "/configmaps", 403, "Forbidden")
    status, answer = await one.deliver("pull_request", payloads.pull_request("opened"), delivery="d-x")
    kube.errors.clear()  # the injected refusal is not a finding
    assert status == 503 and "redeliver" in answer["message"] and seen_one == []


@pytest.fixture
async def api(kube):  # noqa: F811
    api = KubeApi(ApiClient(Configuration(host=kube.url)), NAMESPACE, retries=0)
    yield api
    await api.close()


async def test_an_in_flight_marker_of_a_replica_that_died_goes_stale_and_a_redelivery_is_acted_on(api):
    clock = Clock()
    dead = ClusterDeliveries(api, "dead", clock=clock, stale_after=600)
    alive = ClusterDeliveries(api, "alive", clock=clock, stale_after=600)
    assert await dead.claim("d-cut", run=True)  # ...and its replica dies before done()
    assert not await alive.claim("d-cut", run=True)  # still in flight, as far as anyone knows
    clock.now += 601
    assert await alive.claim("d-cut", run=True)  # stale: taken over
    assert not await dead.claim("d-cut", run=True)  # and now it is alive's
    await alive.done("d-cut", handled=True)
    clock.now += 10_000
    assert not await dead.claim("d-cut", run=True)  # handled markers never go stale


async def test_markers_are_bounded_by_capacity_and_retention(api, kube):  # noqa: F811
    clock = Clock()
    seen = ClusterDeliveries(api, "one", clock=clock, capacity=3, sweep_every=2, retention=3600)
    for n in range(7):
        clock.now += 1
        assert await seen.claim(f"d-{n}", run=True)
        await seen.done(f"d-{n}", handled=True)
        assert len(markers(kube)) <= 3 + 2  # capacity + sweep_every
    await seen.sweep()
    kept = sorted(float(m["data"]["since"]) for m in markers(kube))
    assert len(kept) == 3 and kept[0] == pytest.approx(clock.now - 2)  # the newest three
    assert await seen.claim("d-0", run=True)  # evicted: acted on again, as the file backend's LRU does
    clock.now += 3601
    await seen.sweep()
    assert markers(kube) == []  # past GitHub's redelivery window (the retention)


async def test_a_delivery_no_handler_wants_costs_no_marker(pair, kube):  # noqa: F811
    one, other, *_ = pair
    status, answer = await one.deliver("issues", {"action": "opened", "installation": {"id": 1}}, delivery="d-i")
    assert status == 202 and answer["message"] == "no handler for this event"
    assert (await other.deliver("issues", {"action": "opened", "installation": {"id": 1}}, delivery="d-i"))[0] == 202
    assert markers(kube) == []


async def test_the_kubernetes_backend_wires_every_shared_piece(pair):
    one, *_ = pair
    assert isinstance(one.bot.seen_deliveries, ClusterDeliveries)
    assert isinstance(one.bot.used_codes, ClusterUsedCodes)
    assert one.bot.environments is not None
    assert isinstance(one.bot.environments.operations.state, ClusterDevPodState)
