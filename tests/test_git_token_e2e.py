"""A private PR through the real bot and the stand-in DevPod: the clone token is never on DevPod's disk (issue 11 item 18).

DevPod v0.6.15 writes its whole environment to ``workspace_result.json`` (CONTRACT §9); the stand-in
does the same, and runs ``$GIT_ASKPASS`` as git does for the clone and the fetch of ``pull/N/head``.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import subprocess

from bot import devpod as dp
from bot.settings import config
from tests import payloads
from tests.botserver import BotServer

OWNER, REPO, NUMBER = "Codertocat", "Hello-World", payloads.PR_NUMBER
WS = "hello-world-pr2-4d960c"


def files_holding(root, value: str) -> list:
    return [p for p in root.rglob("*") if p.is_file() and not p.is_symlink() and value.encode() in p.read_bytes()]


async def test_a_private_pr_is_cloned_with_a_token_devpod_never_holds(environ, github, devpod, tmp_path, caplog):
    caplog.set_level(logging.DEBUG)  # every log line, not only warnings
    github.add_installation(payloads.INSTALLATION_ID)
    github.add_repo(OWNER, REPO, private=True, installation_id=payloads.INSTALLATION_ID)
    github.set_permission(OWNER, REPO, OWNER, "admin")
    github.add_pull(OWNER, REPO, NUMBER, head_sha=payloads.pull_request("opened")["pull_request"]["head"]["sha"])
    payload = payloads.pull_request("opened")
    payload["repository"]["private"] = True
    srv = await BotServer(config.load(environ)).start()
    try:
        await srv.deliver("pull_request", payload)
        await srv.settle()
    finally:
        await srv.stop()
    [up] = devpod.calls("up")
    assert up["git_askpass"] and not up["git_token_env"]
    assert not any(name.endswith("TOKEN") for name in up["env"])
    tokens = list(github.state.tokens)
    by_sha = {hashlib.sha256(t.encode()).hexdigest(): t for t in tokens}
    asked = [json.loads(line) for line in (devpod.home / "standin-askpass.jsonl").read_text().splitlines()]
    assert [a["process"] for a in asked] == ["clone", "fetch"]
    clone_token = by_sha[asked[0]["password_sha256"]]  # git got a token GitHub issued, through askpass
    assert asked[1]["password_sha256"] == asked[0]["password_sha256"]
    mints = [c for c in github.calls_to("POST", r"/app/installations/\d+/access_tokens") if c.json]
    assert mints[-1].json == {"repositories": [REPO], "permissions": {"contents": "read"}}
    # DevPod's environment went to disk, with the nonce and without the token.
    env = devpod.workspace_result(WS)["SubstitutionContext"]["Env"]
    assert env[dp.NONCE_ENV] and clone_token not in json.dumps(env)
    for token in tokens:
        assert files_holding(devpod.home, token) == [] and files_holding(tmp_path / "state", token) == []
        assert token not in caplog.text
    # The nonce on disk is worthless now: the operation is over.
    again = await asyncio.to_thread(subprocess.run, [env["GIT_ASKPASS"], "Password for 'x': "], env=env,
                                    capture_output=True, text=True, timeout=30)
    assert again.returncode == 1 and again.stdout == ""
    assert env[dp.NONCE_ENV] not in caplog.text
    runs = [r for r in github.check_runs(OWNER, REPO) if r["name"] == "devenv"]
    assert runs[-1]["conclusion"] == "success"
