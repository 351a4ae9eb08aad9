"""The agent runs' ledger in the cluster (bot/replicas/records_runs.py): spec.agentRuns of the
workspace's DevEnvironment, beside the record, neither write losing the other."""

from __future__ import annotations

import dataclasses
import json

import pytest

from bot.agent.ledger import ClusterLedger, Ledger, RunEntry, open_ledger
from bot.environments.states import State
from bot.replicas.records_runs import ClusterRunLedger
from bot.settings import config
from tests.botserver import BotServer
from tests.eventually import eventually
from tests.test_agent_e2e import KEY, SAMPLES, agent_checks, command, finish, open_pr
from tests.test_agent_e2e import WS as AGENT_WS
from tests.test_agent_lifecycle import environ as agent_environ  # noqa: F401  (the fixture: stand-in claude)
from tests.test_replicas_store import NS, WS, new_record, records, store


def entry(run_id: str = "run-1", **fields) -> RunEntry:
    return RunEntry(run_id=run_id, ws_id=WS, installation_id=1, owner="Codertocat", repo="Hello-World", number=2,
                    head_sha="c" * 40, requested_by="octocat", started_at=5.0, **fields)


def ledger(kube, replica: str = "replica-1", alive=lambda replica: False) -> ClusterRunLedger[RunEntry]:
    return ClusterRunLedger(store(kube, replica), RunEntry.from_json, alive=alive)


def test_the_cluster_backend_journals_runs_in_the_cluster(kube, tmp_path):
    assert isinstance(open_ledger(store(kube), tmp_path), ClusterLedger)
    assert type(open_ledger(object(), tmp_path)) is Ledger


def test_a_run_is_kept_beside_its_record_without_prompt_or_token_and_forgotten(kube):
    one = records(kube)
    one.save(one.add(new_record()))
    runs = ledger(kube)
    runs.save(entry(check_run_id=7))
    item = kube.get("devenvironments", NS, WS)["spec"]["agentRuns"]["run-1"]
    assert item["replica"] == "replica-1"
    assert set(item["entry"]) == {f.name for f in dataclasses.fields(RunEntry)}  # nothing else: no prompt, no token
    assert ledger(kube, "replica-2").load_all() == [entry(check_run_id=7)]  # replica-1 is gone: recovered
    ledger(kube, "replica-2").forget("run-1")  # found by listing
    assert kube.get("devenvironments", NS, WS)["spec"]["agentRuns"] == {}


def test_the_record_and_its_runs_are_written_at_once_and_both_kept(kube):
    one = records(kube)
    record = one.add(new_record())
    one.save(record)
    ledger(kube).save(entry())  # the object changed behind the records store's back
    record.state = State.RUNNING
    one.save(record)  # a 409, a merge: agentRuns kept
    obj = kube.get("devenvironments", NS, WS)
    assert obj["spec"]["state"] == "running" and list(obj["spec"]["agentRuns"]) == ["run-1"]
    runs = ledger(kube)
    runs.save(entry(state="ended", final={"status": "completed"}))
    assert kube.get("devenvironments", NS, WS)["spec"]["record"]["state"] == "running"


def test_a_start_up_leaves_the_runs_of_replicas_still_alive_alone(kube):
    one = records(kube)
    one.save(one.add(new_record()))
    ledger(kube, "replica-1").save(entry("run-1"))
    assert ledger(kube, "replica-2", alive=lambda replica: replica == "replica-1").load_all() == []
    assert [e.run_id for e in ledger(kube, "replica-1", alive=lambda replica: True).load_all()] == ["run-1"]


@pytest.mark.skipif(not SAMPLES.is_dir(), reason=f"no Claude Code stream samples at {SAMPLES}")
async def test_a_conclusion_owed_by_a_replica_that_is_gone_is_written_by_another(agent_environ, repo, github, devpod,
                                                                               kube, tmp_path):
    """Replica 0 ends a run but GitHub never gets its conclusion; replica 0 goes away. Replica 1, with a
    state directory of its own, finds what is owed in the cluster and writes it (once, not run again)."""
    kubeconfig = str(kube.write_kubeconfig(tmp_path / "kubeconfig", NS))

    def replica(index: int) -> BotServer:
        return BotServer(config.load({**agent_environ, "DEVENV_STATE_BACKEND": "kubernetes", "KUBECONFIG": kubeconfig,
                                      "DEVENV_REPLICA_ID": f"replica-{index}",
                                      "DEVENV_STATE_DIR": str(tmp_path / f"state-{index}")}))

    first = await replica(0).start()
    try:
        await open_pr(first, github)
        github.inject(method="PATCH", path=r"/check-runs/\d+$", status=502, times=100_000)  # nothing gets through
        await first.deliver("issue_comment", command(github, '/devenv agent run "Say hello"'))
        await finish(first)
        assert [c["status"] for c in agent_checks(github)] == ["in_progress"]  # the conclusion was tried, and lost
    finally:
        await first.stop()
    [item] = kube.get("devenvironments", NS, AGENT_WS)["spec"]["agentRuns"].values()
    assert item["replica"] == "replica-0" and item["entry"]["state"] == "ended"
    # what the file holds, no more: the check run's final text (public on GitHub anyway), never the
    # prompt as such, the agent's key or a token
    assert set(item["entry"]) == {f.name for f in dataclasses.fields(RunEntry)}
    assert KEY not in json.dumps(item) and "ghs_" not in json.dumps(item)
    github.faults.clear()
    second = await replica(1).start()
    try:
        await eventually(lambda: agent_checks(github)[0]["status"] == "completed", what="the owed conclusion")
        await second.bot.agent_runs.idle()
    finally:
        await second.stop()
    [check] = agent_checks(github)
    assert check["conclusion"] == "success" and check["output"]["title"] == "The agent finished"
    assert kube.get("devenvironments", NS, AGENT_WS)["spec"]["agentRuns"] == {}
    assert not list(tmp_path.glob("state-*/agent-runs/*.json"))  # nothing on disk: it was all in the cluster
