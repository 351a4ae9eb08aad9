"""The agent runs' ledger in the cluster (bot/replicas/records_runs.py): spec.agentRuns of the
workspace's DevEnvironment, beside the record, neither write losing the other."""

from __future__ import annotations

import dataclasses

from bot.agent.ledger import ClusterLedger, Ledger, RunEntry, open_ledger
from bot.environments.states import State
from bot.replicas.records_runs import ClusterRunLedger
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
