"""The Lease primitive (bot/replicas/leases.py) against the Kubernetes fake: two holders, expiry takeover,
renewal, release, and a race for an expired Lease with exactly one winner. Time is a hand-moved clock."""

from __future__ import annotations

import asyncio
import subprocess
import time

import pytest
from kubernetes.client import ApiClient, Configuration

from bot.cluster.kube import KubeApi
from bot.replicas.leases import Leases, format_micro, parse_micro
from tests.eventually import eventually
from tests.k8s_fake.server import ApiError

NS = "devenv-bot"
NAME = "devenv-ws-hello-world-pr2-4d960c"


class Clock:
    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def api(kube):
    api = KubeApi(ApiClient(Configuration(host=kube.url)), NS)
    yield api
    await api.close()


@pytest.fixture
def clock() -> Clock:
    return Clock()


def replica(api: KubeApi, clock: Clock, name: str, duration: float = 15) -> Leases:
    return Leases(api, name, duration, clock=clock)


def spec(kube) -> dict:
    return kube.get("leases", NS, NAME)["spec"]


def test_micro_time_is_what_the_api_server_parses():
    assert format_micro(1_800_000_000.25) == "2027-01-15T08:00:00.250000Z"
    assert parse_micro("2027-01-15T08:00:00.250000Z") == 1_800_000_000.25
    assert parse_micro("2027-01-15T08:00:00Z") == 1_800_000_000.0


def test_the_fake_refuses_a_lease_whose_times_are_not_micro_time(kube):
    bad = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": {"name": "x"},
           "spec": {"holderIdentity": "a", "renewTime": "2027-01-15T08:00:00Z"}}
    with pytest.raises(ApiError, match="MicroTime"):
        kube.put_object("leases", NS, bad)


async def test_the_first_replica_takes_a_free_lease_and_the_second_is_refused(kube, api, clock):
    one, two = replica(api, clock, "replica-1"), replica(api, clock, "replica-2")
    assert await one.try_acquire(NAME)
    assert not await two.try_acquire(NAME)
    s = spec(kube)
    assert s["holderIdentity"] == "replica-1" and s["leaseDurationSeconds"] == 15 and s["leaseTransitions"] == 0
    assert s["renewTime"] == format_micro(clock.now)
    assert await one.try_acquire(NAME)  # its own: taken again (renewed), nobody else's turn
    assert spec(kube)["holderIdentity"] == "replica-1"


async def test_an_expired_lease_is_taken_over_and_the_transition_counted(kube, api, clock):
    one, two = replica(api, clock, "replica-1"), replica(api, clock, "replica-2")
    assert await one.try_acquire(NAME)
    clock.now += 15  # renewTime + duration == now: not expired yet
    assert not await two.try_acquire(NAME)
    clock.now += 0.5
    assert await two.try_acquire(NAME)
    s = spec(kube)
    assert s["holderIdentity"] == "replica-2" and s["leaseTransitions"] == 1
    assert s["acquireTime"] == s["renewTime"] == format_micro(clock.now)
    assert not await one.renew(NAME)  # the old holder learns it lost it
    assert spec(kube)["holderIdentity"] == "replica-2"


async def test_renewal_keeps_a_lease_from_being_taken_over(kube, api, clock):
    one, two = replica(api, clock, "replica-1"), replica(api, clock, "replica-2")
    assert await one.try_acquire(NAME)
    acquired = spec(kube)["acquireTime"]
    for _ in range(5):
        clock.now += 10
        assert await one.renew(NAME)
        assert not await two.try_acquire(NAME)
    s = spec(kube)
    assert s["renewTime"] == format_micro(clock.now) and s["acquireTime"] == acquired and s["leaseTransitions"] == 0


async def test_a_released_lease_is_free_at_once_and_release_never_frees_someone_else_s(kube, api, clock):
    one, two = replica(api, clock, "replica-1"), replica(api, clock, "replica-2")
    assert await one.try_acquire(NAME)
    await two.release(NAME)  # not its own: nothing happens
    assert spec(kube)["holderIdentity"] == "replica-1"
    await one.release(NAME)
    assert "holderIdentity" not in spec(kube)
    assert await two.try_acquire(NAME)  # no need to wait for an expiry
    assert spec(kube)["holderIdentity"] == "replica-2"


async def test_two_replicas_racing_for_an_expired_lease_leave_exactly_one_winner(kube, api, clock):
    """Both read the same resourceVersion (their GETs are held until both are in), both PUT: the API
    server's optimistic concurrency answers one of them 409."""
    old = replica(api, clock, "replica-0")
    assert await old.try_acquire(NAME)
    clock.now += 60
    racers = [replica(api, clock, f"replica-{i}") for i in (1, 2)]
    kube.hang("GET", f"/leases/{NAME}", times=2)
    race = asyncio.gather(*(r.try_acquire(NAME) for r in racers))
    await eventually(lambda: len(kube.hanging) == 2, what="both replicas read the expired lease")
    kube.release()
    results = await race
    assert sorted(results) == [False, True]
    winner = racers[results.index(True)].holder
    assert spec(kube)["holderIdentity"] == winner and spec(kube)["leaseTransitions"] == 1
    assert [c.status for c in kube.calls if c.method == "PUT"] == [200, 409]


# --------------------------------------------------------------------------- the stand-in's overlap check


def test_the_stand_in_sees_two_processes_on_one_workspace_even_though_its_lock_serialises_them(tmp_path):
    """The ops log is written before DevPod's workspace lock: two ``up`` at once are an overlap (the bot
    must never ask for that), two in a row are not, and a stop of another workspace meanwhile is fine."""
    from tests.standin import DevPodStandIn
    from tests.test_devpod_standin import SOURCE, WS, up

    standin = DevPodStandIn(tmp_path / "home", provider_configured=True)
    (standin.home / "ssh").mkdir()
    assert up(standin).returncode == 0 and up(standin).returncode == 0
    [first, second] = standin.op_spans()
    assert first["ws"] == second["ws"] == WS and first["command"] == "up" and second["start"] >= first["end"]
    standin.assert_no_overlap()
    standin.inject(command="up", sleep=1.0)
    slow = subprocess.Popen([str(standin.binary), "up", WS, "--id", WS, "--source", SOURCE, "--ide", "none",
                             "--open-ide=false", "--ssh-config", str(standin.home / "ssh" / "c")],
                            env={"PATH": standin.search_path, "DEVPOD_HOME": str(standin.home)},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while len(standin.op_spans()) < 3 and time.monotonic() < deadline:
            time.sleep(0.02)  # a subprocess, not the bot: no event loop to wait on
        assert up(standin, ws="other-ws", source="git:https://github.com/Codertocat/other").returncode == 0
        assert standin.overlaps() == []  # another workspace: not an overlap
        assert up(standin).returncode == 0  # DevPod's lock makes it wait, but the bot asked for it at once
    finally:
        assert slow.wait(20) == 0
    [(a, b)] = standin.overlaps()
    assert a["ws"] == b["ws"] == WS and a["pid"] != b["pid"]
    with pytest.raises(AssertionError, match="two DevPod processes ran on one workspace at once"):
        standin.assert_no_overlap()


async def test_a_workspace_lease_lost_mid_operation_is_logged_counted_and_not_released_from_its_new_holder(
        kube, api, clock, caplog):
    from bot.replicas.coordination import LeaseCoordination, workspace_lease

    ticks: asyncio.Queue[None] = asyncio.Queue()
    slept: list[float] = []

    async def sleep(seconds: float) -> None:  # the renewer's pauses, one per tick the test gives
        slept.append(seconds)
        await ticks.get()

    lost: list[str] = []
    one = LeaseCoordination(replica(api, clock, "replica-1"), slots=1, on_lost=lost.append, sleep=sleep,
                            clock=clock)
    async with one.workspace("hello-world-pr2-4d960c", lambda: None):
        assert spec(kube)["holderIdentity"] == "replica-1"
        clock.now += 4
        ticks.put_nowait(None)
        await eventually(lambda: len(slept) == 2, what="one renewal")
        assert spec(kube)["renewTime"] == format_micro(clock.now) and lost == []
        assert slept[0] == 5  # a third of the lease duration
        later = Clock(clock.now + 60)  # a replica that believes the lease expired (it stopped being renewed)
        assert await replica(api, later, "replica-2").try_acquire(workspace_lease("hello-world-pr2-4d960c"))
        ticks.put_nowait(None)
        await eventually(lambda: lost == ["workspace"], what="the loss noticed")
        assert "LOST lease devenv-ws-hello-world-pr2-4d960c" in caplog.text
    assert spec(kube)["holderIdentity"] == "replica-2"  # the end of the operation did not free it
