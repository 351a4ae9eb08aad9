"""The agent runs' ledger: entries survive a process, are replaced atomically, and a bad file is kept aside."""

from __future__ import annotations

import json

from bot.agent.ledger import Ledger, RunEntry


def entry(**changes) -> RunEntry:
    base = RunEntry(run_id="0123456789abcdef0123456789abcdef", ws_id="hello-world-pr2-4d960c", installation_id=1,
                    owner="Codertocat", repo="Hello-World", number=2, head_sha="ec26c3e5", requested_by="octocat",
                    started_at=1000.0, comment_id=7)
    for name, value in changes.items():
        setattr(base, name, value)
    return base


def test_an_entry_reads_back_as_it_was_written_and_holds_no_prompt(tmp_path):
    ledger = Ledger(tmp_path)
    ledger.save(entry(check_run_id=42))
    [back] = Ledger(tmp_path).load_all()  # another process, the same state dir
    assert back == entry(check_run_id=42) and back.ref.full_name == "Codertocat/Hello-World"
    final = {"status": "completed", "conclusion": "cancelled", "output": {"title": "t", "summary": "s"}}
    ledger.save(entry(check_run_id=42, state="ended", final=final))
    [ended] = ledger.load_all()
    assert ended.state == "ended" and ended.final == final
    assert [p.name for p in (tmp_path / "agent-runs").iterdir()] == [f"{back.run_id}.json"]  # no temporary left
    assert set(json.loads((tmp_path / "agent-runs" / f"{back.run_id}.json").read_text())) == {
        "run_id", "ws_id", "installation_id", "owner", "repo", "number", "head_sha", "requested_by", "started_at",
        "comment_id", "check_run_id", "state", "final"}
    ledger.forget(back.run_id)
    assert ledger.load_all() == []


def test_an_unreadable_entry_is_moved_aside_and_logged_not_dropped(tmp_path, caplog):
    ledger = Ledger(tmp_path)
    ledger.save(entry())
    bad = tmp_path / "agent-runs" / "ffffffffffffffffffffffffffffffff.json"
    bad.write_bytes(b"\xff{not json")
    assert [e.run_id for e in ledger.load_all()] == [entry().run_id]
    assert (tmp_path / "agent-runs" / "ffffffffffffffffffffffffffffffff.corrupt").read_bytes() == b"\xff{not json"
    assert not bad.exists() and "cannot be read" in caplog.text


def test_an_empty_state_dir_has_no_entries(tmp_path):
    assert Ledger(tmp_path / "nowhere").load_all() == []
