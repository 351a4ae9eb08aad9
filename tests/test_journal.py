"""The journal keeps what it cannot read: a corrupted record is moved aside with a log line, not forgotten."""

from __future__ import annotations

import logging

from bot.environments.journal import EnvRecord, Journal


def test_a_corrupted_record_is_moved_aside_and_said_so(tmp_path, caplog):
    journal = Journal(tmp_path)
    journal.save(EnvRecord(ws_id="good-pr1-aaaaaa", installation_id=1, owner="o", repo="r", number=1, head_sha="a"))
    broken = journal.dir / "broken-pr2-bbbbbb.json"
    broken.write_bytes(b'{"ws_id": "broken-pr2-bbbbbb", "links": [{"url": "https://x"}], \xff')
    with caplog.at_level(logging.ERROR):
        records = journal.load_all()
    assert [r.ws_id for r in records] == ["good-pr1-aaaaaa"]
    aside = journal.dir / "broken-pr2-bbbbbb.corrupt"
    assert not broken.exists() and aside.read_bytes().endswith(b"\xff")  # kept whole, for a human to look at
    assert "broken-pr2-bbbbbb" in caplog.text and str(aside) in caplog.text
    # a new record for that workspace no longer overwrites the evidence
    journal.save(EnvRecord(ws_id="broken-pr2-bbbbbb", installation_id=1, owner="o", repo="r", number=2, head_sha="b"))
    assert aside.exists() and len(journal.load_all()) == 2
