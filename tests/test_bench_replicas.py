"""bench/replicas.py counts what it says: two real replicas, a tiny load, the counts checked against FakeKube.calls.

The counts are recomputed here from the fake's own record of requests, independently of the bench's
``classify`` (by method and path and the object's name), and the expected marker requests come from the
mix itself (bench/webhooks.py's MIX_PATTERN: only the deliveries a handler wants get a marker).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import pytest

from bench import replicas as bench
from bench.webhooks import MIX_PATTERN, EmulatorThread
from tests import payloads
from tests.replicas import cluster

pytestmark = pytest.mark.slow

MARKED = ("pull_request.closed", "issue_comment.created")  # the kinds of the mix with a handler
CONFIGMAPS = "/api/v1/namespaces/devenv-bot/configmaps"


def args(**kw) -> argparse.Namespace:
    base = dict(n=40, c=4, repeat=2, warmup=4, idle=1.0, per_kind=2, log_level="info", request_timeout=10.0)
    return argparse.Namespace(**{**base, **kw})


def marker_creates(calls) -> int:
    return sum(1 for c in calls if c.method == "POST" and c.path == CONFIGMAPS
               and c.body["metadata"]["name"].startswith("devenv-delivery-") and c.status == 201)


@pytest.fixture
def emulator():
    thread = EmulatorThread()
    emu = thread.start()
    emu.add_installation(payloads.INSTALLATION_ID, account="Codertocat")
    emu.add_repo("Codertocat", "Hello-World", installation_id=payloads.INSTALLATION_ID)
    emu.set_permission("Codertocat", "Hello-World", "Codertocat", "admin")
    pr = payloads.pull_request("opened")["pull_request"]
    emu.add_pull("Codertocat", "Hello-World", payloads.PR_NUMBER, head_sha=pr["head"]["sha"],
                 head_ref=pr["head"]["ref"], title=pr["title"])
    try:
        yield thread
    finally:
        thread.stop()
        thread.loop.close()  # EmulatorThread leaves its loop open (fine at a bench's exit, not in a test run)
    emu.assert_valid()


async def test_the_bench_reports_a_rate_no_loss_and_the_requests_the_cluster_saw(emulator):
    kube = cluster()
    try:
        with tempfile.TemporaryDirectory(prefix="devenv-bench-replicas-test-") as tmp:
            result = await bench.run_config(emulator, "kubernetes", 2, args(), Path(tmp), with_ops=True, kube=kube)
    finally:
        kube.close()
    assert not kube.forbidden and not kube.errors
    assert result["exit_codes"] == [0, 0] and result["log_errors"] == 0
    assert result["deliveries_per_s"] > 0 and result["lost"] == 0

    # Every request is counted once, under one name.
    counted = bench.count(kube.calls)
    assert sum(counted.values()) == len(kube.calls)
    for row in result["rounds"]:
        assert sum(row["kube_by_kind"].values()) == row["kube_requests"] > 0

    # The markers: one created per delivery a handler wants, in the rounds and in the fake alike.
    wanted = sum(1 for kind in MIX_PATTERN if kind in MARKED) / len(MIX_PATTERN)
    assert result["kube_per_delivery"]["create configmaps(delivery)"] == pytest.approx(wanted)
    in_rounds = sum(row["kube_by_kind"].get("create configmaps(delivery)", 0) for row in result["rounds"])
    assert in_rounds == round(wanted * 40) * 2
    per_kind = result["per_kind"]
    # a delivery no handler wants costs nothing; what may show beside it is the replicas' periodic background
    # (the records' poll, Lease renewals) that the per-kind window could not net out exactly
    assert not [k for k in per_kind["pull_request.labeled"]
                if not (k.startswith("list devenvironments") or " leases(" in k)]
    assert per_kind["issue_comment.created"]["create configmaps(delivery)"] == 1
    ops = result["ops"]
    n_ops_markers = 3  # the opened delivery and the two commands
    all_markers = in_rounds + 2 * sum(1 for k in dict.fromkeys(MIX_PATTERN) if k in MARKED) + n_ops_markers
    warm_up = sum(1 for kind in MIX_PATTERN[:4] if kind in MARKED)  # the first 4 of the mix
    assert marker_creates(kube.calls) == all_markers + warm_up

    # The DevPod operations: each settled, the up created the record, the delete removed it and DevPod's Secret.
    assert all(op["settled"] and op["status"] == 202 for op in ops.values())
    assert ops["up"]["net"]["create devenvironments"] == 1
    assert ops["delete"]["net"]["delete devenvironments"] == 1 and ops["delete"]["net"]["delete secrets"] == 1
    assert sum(1 for c in kube.calls if c.method == "POST" and c.path.endswith("/devenvironments")) == 1


def test_classify_names_verbs_resources_purposes_and_failures():
    class Call:
        def __init__(self, method, path, status=200, body=None):
            self.method, self.path, self.status, self.body = method, path, status, body

    ns = "/namespaces/devenv-bot"
    assert bench.classify(Call("GET", f"/apis/coordination.k8s.io/v1{ns}/leases/devenv-bot-leader")) == \
        "get leases(leader)"
    assert bench.classify(Call("POST", f"/apis/coordination.k8s.io/v1{ns}/leases", 409,
                               {"metadata": {"name": "devenv-slot-3"}})) == "create leases(slot) 409"
    assert bench.classify(Call("GET", f"/apis/devenv-bot.dev/v1alpha1{ns}/devenvironments")) == "list devenvironments"
    assert bench.classify(Call("GET", f"/api/v1{ns}/pods/ws-1/log")) == "get pods/log"
    assert bench.classify(Call("DELETE", f"/api/v1{ns}/secrets/x")) == "delete secrets"
    assert bench.net({"get leases(leader)": 3, "get secrets": 4}, 30, {"get secrets": 2.0}, per=2) == {"get secrets": 1.5}
