"""The environments' records in the cluster (bot/replicas/records.py), against the Kubernetes fake.

The fake validates every DevEnvironment against the CRD rendered from deploy/ (a field the schema
does not name is an error, as the API server would prune it) and, in the tests that say so,
enforces the RBAC rules rendered from deploy/. Two stores on one fake are two replicas.
"""

from __future__ import annotations

import dataclasses
import logging

import pytest
from kubernetes.client import ApiClient, Configuration

from bot.environments.journal import HISTORY_SIZE, Action, EnvRecord, Op, Records, Unpublished
from bot.environments.states import State
from bot.replicas.records import SET_ASIDE_LABEL, ClusterRecords
from bot.replicas.records_merge import merge3, merge_list
from tests.k8s_fake import FakeKube, Policy

NS = "devenv-bot"  # the bot's own namespace in deploy/
WS = "hello-world-pr2-abcdef"
BOT_ACCOUNT = ("devenv-bot", "devenv-bot")


def store(kube: FakeKube, replica: str = "replica-1") -> ClusterRecords[EnvRecord]:
    return ClusterRecords(ApiClient(Configuration(host=kube.url)), NS, EnvRecord.from_json, replica=replica,
                          lists=("history", "pending"), limits={"history": HISTORY_SIZE}, sleep=lambda _: None,
                          identity=("ws_id", "installation_id", "owner", "repo", "number", "head_sha"))


def records(kube: FakeKube, replica: str = "replica-1") -> Records:
    return Records(store(kube, replica), clock=lambda: 1000.0)


def new_record(ws_id: str = WS, **fields) -> EnvRecord:
    return EnvRecord(ws_id=ws_id, installation_id=1, owner="Codertocat", repo="Hello-World", number=2,
                     head_sha="c" * 40, **fields)


@pytest.fixture
def rbac_kube():
    """The fake with the bot's rules from deploy/base enforced."""
    from tests.test_deploy import render

    fake = FakeKube(rbac=Policy.from_manifests(render("base"), service_account=BOT_ACCOUNT)).start()
    try:
        yield fake
    finally:
        fake.close()
    assert not fake.forbidden, "\n".join(fake.forbidden)
    fake.assert_valid()


def exercise(kube: FakeKube) -> None:
    """Every call the store makes: create, list, get, update, delete (tests/test_rbac.py runs it too)."""
    one, two = records(kube, "replica-1"), records(kube, "replica-2")
    record = one.add(new_record())
    one.save(record)  # create
    two.load()  # list
    record.state = State.RUNNING
    one.save(record)  # update
    assert two.refresh(WS).state == State.RUNNING  # get
    one.forget(WS)  # delete
    assert two.refresh(WS) is None


def test_a_record_written_by_one_replica_is_read_back_whole_by_another(rbac_kube):
    one, two = records(rbac_kube, "replica-1"), records(rbac_kube, "replica-2")
    record = one.add(new_record(state=State.RUNNING, comment_id=7, title="Fix it", ports=[{"name": "web", "port": 3000}],
                                op=Op("up", "c" * 40, "octocat", 5.0, check_run_id=3, also_notify=[9]),
                                pending=[Op("stop", "c" * 40, "hubot", 6.0)], errors=["boom"], draft=False,
                                unpublished=Unpublished(Op("up", "c" * 40, "octocat", 5.0), "success", "Ready")))
    record.last_action = Action("up", "octocat", 5.0)
    one.save(record)
    two.load()
    assert two.get(WS).to_json() == record.to_json()
    [obj] = rbac_kube.objects("devenvironments", NS)
    assert obj["metadata"]["name"] == WS
    assert {k: obj["spec"][k] for k in ("repository", "pr", "state", "head", "replica")} == {
        "repository": "Codertocat/Hello-World", "pr": 2, "state": "running", "head": "c" * 12, "replica": "replica-1"}
    assert two.counts[State.RUNNING] == 1


def test_the_store_stays_within_the_rules_of_deploy(rbac_kube):
    exercise(rbac_kube)
    assert {v for g, r, v in rbac_kube.exercised if r == "devenvironments"} == {"get", "list", "create", "update",
                                                                                 "delete"}


def test_two_replicas_writing_one_record_at_once_both_keep_their_change(kube):
    one, two = records(kube, "replica-1"), records(kube, "replica-2")
    mine = one.add(new_record())
    one.save(mine)
    theirs = two.refresh(WS)
    mine.comment_id = 42
    mine.last_action = Action("up", "octocat", 10.0)
    one.save(mine)
    theirs.state = State.STOPPED  # replica 2 has not seen replica 1's write: a 409, then a merge
    theirs.last_action = Action("stop", "hubot", 11.0)
    two.save(theirs)
    stored = EnvRecord.from_json(kube.get("devenvironments", NS, WS)["spec"]["record"])
    assert stored.comment_id == 42 and stored.state == State.STOPPED
    assert [a.verb for a in stored.history] == ["up", "stop"]
    assert theirs.to_json() == stored.to_json()  # the saver's record now holds the merged result
    assert any(c.method == "PUT" and c.status == 409 for c in kube.calls)


def test_two_replicas_creating_one_record_at_once_both_keep_their_change(kube):
    one, two = records(kube, "replica-1"), records(kube, "replica-2")
    first, second = one.add(new_record()), two.add(new_record())
    first.comment_id = 5
    first.last_action = Action("up", "octocat", 1.0)
    one.save(first)
    second.check_run_id = 6
    second.last_action = Action("status", "hubot", 2.0)
    two.save(second)  # a POST that meets the object: merged from an empty base
    stored = EnvRecord.from_json(kube.get("devenvironments", NS, WS)["spec"]["record"])
    assert (stored.comment_id, stored.check_run_id) == (5, 6)
    assert [a.verb for a in stored.history] == ["up", "status"]


def test_refresh_updates_the_record_in_place_and_the_counts(kube):
    one, two = records(kube, "replica-1"), records(kube, "replica-2")
    record = one.add(new_record(state=State.RUNNING))
    one.save(record)
    held = two.refresh(WS)  # another part of replica 2 holds this very object
    record.state, record.env_sha = State.STOPPED, "d" * 40
    one.save(record)
    assert two.refresh(WS) is held
    assert (held.state, held.env_sha) == (State.STOPPED, "d" * 40)
    assert two.counts[State.STOPPED] == 1 and two.counts[State.RUNNING] == 0


def test_refresh_all_picks_up_records_other_replicas_created_and_deleted(kube):
    one, two = records(kube, "replica-1"), records(kube, "replica-2")
    one.save(one.add(new_record()))
    two.refresh_all()
    assert list(two.by_id) == [WS]
    unsaved = two.add(new_record("other-pr3-abcdef"))  # made here, not saved yet: not another's delete
    one.forget(WS)
    two.refresh_all()
    assert list(two.by_id) == ["other-pr3-abcdef"] and two.get("other-pr3-abcdef") is unsaved


def test_a_save_after_another_replica_deleted_the_record_creates_it_again(kube):
    one, two = records(kube, "replica-1"), records(kube, "replica-2")
    record = one.add(new_record())
    one.save(record)
    two.refresh(WS)
    two.forget(WS)
    record.state = State.DELETED
    one.save(record)
    assert kube.get("devenvironments", NS, WS)["spec"]["state"] == "deleted"


def test_an_unreadable_record_is_set_aside_not_overwritten(kube, caplog):
    obj = {"apiVersion": "devenv-bot.dev/v1alpha1", "kind": "DevEnvironment", "metadata": {"name": WS},
           "spec": {"repository": "Codertocat/Hello-World", "pr": 2, "state": "running", "head": "c" * 12,
                    "record": {**new_record().to_json(), "state": "running", "op": {"kind": "up", "bogus": 1}}}}
    kube.put_object("devenvironments", NS, obj)
    one = records(kube)
    with caplog.at_level(logging.ERROR):
        one.load()
    assert one.get(WS) is None and one.journal.set_aside() == [WS]
    [aside] = kube.objects("devenvironments", NS)
    assert aside["metadata"]["name"].startswith(f"{WS}.set-aside-")
    assert aside["metadata"]["labels"] == {SET_ASIDE_LABEL: "true"}
    assert aside["spec"]["record"]["op"] == {"kind": "up", "bogus": 1}  # kept as it was, for the operator
    assert f"workspace {WS} is not tracked" in caplog.text
    one.save(one.add(new_record()))  # a new record takes the name; the one set aside stays
    assert len(kube.objects("devenvironments", NS)) == 2
    assert records(kube, "replica-2").journal.load_all()[0].ws_id == WS
    assert store(kube).set_aside() == [] and (fresh := store(kube)).load_all() and fresh.set_aside() == [WS]


def test_the_fake_holds_records_to_the_crd_schema_of_deploy(kube):
    """A field the CRD does not name would be pruned by the API server: the fake refuses it."""
    obj = {"apiVersion": "devenv-bot.dev/v1alpha1", "kind": "DevEnvironment", "metadata": {"name": WS},
           "spec": {"repository": "a/b", "pr": 2, "state": "running", "head": "c",
                    "record": {**new_record().to_json(), "state": "running", "not_in_the_crd": 1}}}
    with pytest.raises(Exception, match="not_in_the_crd"):
        kube.put_object("devenvironments", NS, obj)
    kube.errors.clear()
    obj["spec"]["record"].pop("not_in_the_crd")
    obj["spec"]["state"] = "sleeping"
    with pytest.raises(Exception, match="sleeping"):
        kube.put_object("devenvironments", NS, obj)
    kube.errors.clear()


def test_every_field_of_a_record_is_in_the_crd(kube):
    """Each EnvRecord field, set to a non-default value, survives the schema (else the save is refused)."""
    record = new_record(draft=True, trusted=False, approved_sha="a", approved_by="b", devcontainer_path="x",
                        resources="cpu=1", idle_stop=None, delete_after=None, links=[{"name": "code", "url": "u"}],
                        settings_note="n", phase="p", env_sha="e", check_sha="c", note="n", queued_ahead=1,
                        closed=True, fork=True, private=True, head_ref="h", title="t", author="a", ide="vscode",
                        check_run_id=1, updated_at=2.5)
    names = {f.name for f in dataclasses.fields(EnvRecord)}
    assert names <= set(record.to_json())
    store(kube).save(record)
    assert kube.get("devenvironments", NS, WS)["spec"]["record"] == store(kube).load(WS).to_json() | {"state": "none"}


@pytest.mark.parametrize("base, mine, theirs, merged", [
    ([1, 2], [1, 2, 3], [1, 2, 4], [1, 2, 4, 3]),  # both added: both kept
    ([1, 2], [2], [1, 2, 4], [2, 4]),  # mine removed 1 (a queued action replaced), theirs added 4
    ([], [1], [1], [1]),  # the same entry added on both sides: once
])
def test_lists_merge_as_sets(base, mine, theirs, merged):
    assert merge_list(base, mine, theirs) == merged


def test_a_merge_keeps_their_fields_and_reapplies_mine():
    base = {"state": "running", "comment_id": None, "note": "a", "history": [1], "updated_at": 5}
    mine = {"state": "running", "comment_id": 9, "note": "a", "history": [1, 2], "updated_at": 7}
    theirs = {"state": "stopped", "comment_id": None, "note": "b", "history": [1, 3], "updated_at": 8}
    assert merge3(base, mine, theirs, lists=("history",), limits={"history": 2}) == {
        "state": "stopped", "comment_id": 9, "note": "b", "history": [3, 2], "updated_at": 8}


def test_a_refresh_with_no_other_writer_keeps_what_is_held_unsaved(kube):
    """The poll must not undo a change made in memory and not saved yet, when nobody else wrote."""
    one = records(kube)
    record = one.add(new_record())
    one.save(record)
    record.phase = "cloning"  # not saved yet
    one.refresh_all()
    assert one.refresh(WS) is record and record.phase == "cloning"
