"""The requests one replica leaves on another's agent run (bot/replicas/records_runs.py): marks on the run's
item in its DevEnvironment, read by the replica running it, never lost by that replica's own writes."""

from __future__ import annotations

from bot.agent.ledger import ClusterLedger, Ledger
from tests.test_replicas_store import new_record, records
from tests.test_replicas_store_runs import entry, ledger


def running(kube) -> ClusterLedger:
    one = records(kube)
    one.save(one.add(new_record()))
    runs = ClusterLedger(ledger(kube, "replica-1"))
    runs.save(entry("run-1"))
    return runs


def test_a_mark_reaches_the_replica_running_the_run_and_survives_its_next_write(kube):
    mine = running(kube)
    other = ClusterLedger(ledger(kube, "replica-2"))
    [going] = other.running_on(entry().ws_id)  # replica-1's, as replica-2 sees it
    assert going.run_id == "run-1" and going.requested_by == "octocat"
    assert mine.running_on(entry().ws_id) == []  # its own runs are not "elsewhere"
    why = {"kind": "stop", "requested_by": "hubot", "command": "/devenv stop"}
    assert other.request_end(going, why)
    assert other.request_end(going, {"requested_by": "hubot", "comment_id": 9}, "stop")
    mine.save(entry("run-1", check_run_id=7))  # the run goes on writing its entry: the marks stay
    assert mine.end_request(entry("run-1")) == {"end": why, "stop": {"requested_by": "hubot", "comment_id": 9}}
    assert mine.load_all() == [entry("run-1", check_run_id=7)]


def test_an_ended_or_unknown_run_is_not_marked(kube):
    mine = running(kube)
    other = ClusterLedger(ledger(kube, "replica-2"))
    assert not other.request_end(entry("run-2"), {"kind": "stop"})
    mine.save(entry("run-1", state="ended"))
    assert other.running_on(entry().ws_id) == []


def test_one_process_has_nobody_else_to_ask(tmp_path):
    files = Ledger(tmp_path)
    files.save(entry("run-1"))
    assert files.running_on(entry().ws_id) == [] and files.end_request(entry("run-1")) == {}
    assert not files.request_end(entry("run-1"), {"kind": "stop"})
