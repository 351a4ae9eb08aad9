"""Issue 11 item 8 (a corrupted journal record): the record is moved aside and its environment's links
are kept, not swept as orphans at start-up, while a true orphan still is; the log says what to do.

The real bot, the GitHub emulator, the stand-in devpod and the fake Kubernetes API (as in
``test_links_e2e.py``)."""

from __future__ import annotations

import logging

from bot.settings import config
from tests.botserver import BotServer
from tests.test_links_e2e import NS, WS, links_environ, names, opened  # noqa: F401  (the fixture)

ORPHAN = "gone-pr9-abcdef"


def orphan_service() -> dict:
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": f"devenv-{ORPHAN}", "namespace": NS,
                         "labels": {"app.kubernetes.io/managed-by": "devenv-bot", "devenv-bot.dev/workspace": ORPHAN}},
            "spec": {"selector": {"devenv-bot.dev/workspace": ORPHAN}, "ports": [{"name": "code", "port": 10800}]}}


async def test_the_links_of_a_workspace_whose_record_is_corrupt_survive_the_orphan_sweep(
        links_environ, kube, github, devpod, caplog):  # noqa: F811
    first = await BotServer(config.load(links_environ)).start()
    try:
        await opened(first)
    finally:
        await first.stop()
    ingresses = names(kube, "ingresses")
    assert f"devenv-{WS}" in names(kube, "services") and ingresses
    record = first.settings.state_dir / "environments" / f"{WS}.json"
    record.write_bytes(record.read_bytes()[:-20] + b"\xff")  # cut short, as by a full disk
    kube.put_object("services", NS, orphan_service())

    with caplog.at_level(logging.ERROR):
        second = await BotServer(config.load(links_environ)).start()
        await second.stop()
    assert names(kube, "services") == {f"devenv-{WS}"}  # the true orphan went, the set-aside one stayed
    assert names(kube, "ingresses") == ingresses
    aside = record.with_suffix(".corrupt")
    assert aside.exists() and not record.exists()
    assert f"workspace {WS} is not tracked" in caplog.text and str(aside) in caplog.text

    caplog.clear()
    with caplog.at_level(logging.ERROR):  # and again at every start, until the operator acts
        third = await BotServer(config.load(links_environ)).start()
        await third.stop()
    assert names(kube, "services") == {f"devenv-{WS}"}
    assert f"workspace {WS} is not tracked" in caplog.text
