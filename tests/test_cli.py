"""`devenv-bot` as an operator types it: version, help, a dry run, and clear one-line failures."""

from __future__ import annotations

import asyncio
import importlib.metadata
import json
import socket

from tests import payloads
from tests.botserver import bot_environ
from tests.test_process import spawn


async def run(env: dict[str, str], cwd, *args: str) -> tuple[int, str]:
    proc = spawn(env, cwd, *args)
    out, _ = await asyncio.to_thread(proc.communicate, timeout=60)
    return proc.returncode, out


async def test_version_prints_the_installed_version(tmp_path):
    status, out = await run({}, tmp_path, "--version")
    assert status == 0
    assert out.strip() == f"devenv-bot {importlib.metadata.version('devenv-bot')}"


async def test_help_is_plain_text_without_markup(tmp_path):
    status, out = await run({}, tmp_path, "--help")
    assert status == 0
    assert "``" not in out and ":class:" not in out
    assert "serve" in out and "receive" in out


async def test_a_dry_run_says_what_would_happen_and_calls_neither_github_nor_devpod(repo, github, devpod, tmp_path):
    saved = tmp_path / "comment.json"
    saved.write_text(json.dumps(payloads.pr_comment("/devenv recreate")))
    env = bot_environ(github, tmp_path / "state", **devpod.env())
    calls_before = len(github.calls)
    status, out = await run(env, tmp_path, "receive", "--dry-run", "--event", "issue_comment",
                            "--payload", str(saved))
    assert status == 0, out
    assert "handlers.commands.run_command" in out
    assert "the comment asks for: /devenv recreate" in out
    assert "nothing was sent to GitHub or DevPod" in out
    assert len(github.calls) == calls_before
    assert devpod.calls() == []


async def test_a_dry_run_of_an_event_nobody_handles_says_so(tmp_path):
    saved = tmp_path / "star.json"
    saved.write_text(json.dumps({"action": "created"}))
    status, out = await run({}, tmp_path, "receive", "--dry-run", "--event", "star", "--payload", str(saved))
    assert status == 1 and "no handler listens to star.created" in out


async def test_a_port_in_use_gives_one_clear_line_and_no_traceback(repo, github, devpod, tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = {**bot_environ(github, tmp_path / "state", **devpod.env()), "PORT": str(port), "LOG_LEVEL": "warning"}
        status, out = await run(env, tmp_path, "serve")
    assert status == 2
    assert f"devenv-bot cannot listen on 127.0.0.1:{port}: the address is already in use" in out
    assert "Traceback" not in out and "Unclosed" not in out


async def test_an_ec_key_is_refused_at_start_up_with_one_clear_line(tmp_path):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    pem = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()).decode()
    env = {"APP_ID": "1", "PRIVATE_KEY": pem, "WEBHOOK_SECRET": "x" * 32, "PORT": "0"}
    status, out = await run(env, tmp_path, "serve")
    assert status == 2
    assert "PRIVATE_KEY holds a key of type EC, but GitHub Apps sign with RSA keys (RS256)" in out
    assert "Traceback" not in out and "BEGIN" not in out
