"""The clone token reaches DevPod's git through the askpass helper and a nonce, never through DevPod's environment."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import stat
import subprocess
from pathlib import Path

from bot import devpod
from bot.devpod import Masker
from bot.devpod.scrub import scrub
from tests.devpod_rig import TOKEN, settings, standin, up  # noqa: F401  (fixtures)

SHA = hashlib.sha256(TOKEN.encode()).hexdigest()


def access(tmp_path: Path, **kw) -> devpod.GitAccess:
    return devpod.GitAccess(tmp_path / "askpass", tmp_path / "home", ttl=kw.pop("ttl", 60), **kw)


def askpass(env: dict[str, str], prompt: str) -> subprocess.CompletedProcess[str]:
    """Run the helper as git does: a fresh process, the prompt as its argument, git's environment."""
    return subprocess.run([env["GIT_ASKPASS"], prompt], env={"PATH": "/usr/bin:/bin", **env},
                          capture_output=True, text=True, timeout=30)


def files_holding(root: Path, value: str) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() and not p.is_symlink() and value.encode() in p.read_bytes()]


async def test_the_helper_gets_the_token_over_the_socket_once_and_holds_no_secret(tmp_path):
    git = access(tmp_path)
    env = await git.grant(TOKEN, uses=1)
    try:
        assert TOKEN not in json.dumps(env)
        assert set(env) == {"GIT_ASKPASS", "GIT_TERMINAL_PROMPT", devpod.SOCKET_ENV, devpod.NONCE_ENV}
        helper = Path(env["GIT_ASKPASS"])
        assert stat.S_IMODE(helper.stat().st_mode) == 0o700 and TOKEN not in helper.read_text()
        assert stat.S_IMODE((tmp_path / "askpass").stat().st_mode) == 0o700
        assert stat.S_IMODE(os.stat(env[devpod.SOCKET_ENV]).st_mode) == 0o600
        assert askpass(env, "Username for 'https://github.com': ").stdout == "x-access-token\n"
        first = await _ask(env, "Password for 'https://x-access-token@github.com': ")
        assert first.returncode == 0 and first.stdout == TOKEN + "\n"
        second = await _ask(env, "Password for 'https://x-access-token@github.com': ")
        assert second.returncode == 1 and second.stdout == "" and "refused" in second.stderr
    finally:
        await git.close()


async def _ask(env: dict[str, str], prompt: str) -> subprocess.CompletedProcess[str]:
    """The helper in a thread: the bot's event loop must keep serving the socket meanwhile."""
    import asyncio

    return await asyncio.to_thread(askpass, env, prompt)


async def test_a_nonce_is_worthless_once_its_operation_ended_or_it_expired(tmp_path):
    now = [1000.0]
    git = access(tmp_path, ttl=30, clock=lambda: now[0])
    ended, other, expiring = [await git.grant(TOKEN) for _ in range(3)]
    try:
        git.finish(ended)
        assert (await _ask(ended, "Password: ")).returncode == 1
        now[0] += 31  # every grant left is past its deadline now
        assert (await _ask(other, "Password: ")).returncode == 1
        assert git.answer(expiring[devpod.NONCE_ENV]) is None
        assert git.answer("not-a-nonce") is None
    finally:
        await git.close()


async def test_the_socket_is_served_only_while_an_operation_holds_a_grant(tmp_path):
    git = access(tmp_path)
    env = await git.grant(TOKEN)
    sock = Path(env[devpod.SOCKET_ENV])
    assert sock.exists()
    git.finish(env)
    assert not sock.exists()
    refused = await _ask(env, "Password: ")
    assert refused.returncode == 1 and refused.stdout == ""


async def test_a_pr_clone_through_the_standin_asks_twice_and_leaves_no_token_in_devpod_home(settings, standin,
                                                                                             caplog):
    caplog.set_level(logging.DEBUG)
    git = devpod.GitAccess.for_settings(settings)
    env = await git.grant(TOKEN)
    try:
        result = await devpod.run(up(settings), settings=settings, timeout=20, masker=Masker([TOKEN]), env_extra=env)
    finally:
        git.finish(env)
    assert result.ok, result.errors()
    asked = [json.loads(line) for line in (standin.home / "standin-askpass.jsonl").read_text().splitlines()]
    assert [(a["process"], a["username"], a["password_sha256"]) for a in asked] == [
        ("clone", "x-access-token", SHA), ("fetch", "x-access-token", SHA)]  # git clone, then git fetch pull/1/head
    call = standin.calls("up")[-1]
    assert call["git_askpass"] and not call["git_token_env"] and TOKEN not in " ".join(call["argv"])
    recorded = standin.workspace_result("hello-world-pr1-abcdef")["SubstitutionContext"]["Env"]
    assert recorded[devpod.NONCE_ENV] == env[devpod.NONCE_ENV]  # DevPod keeps its environment on disk...
    assert files_holding(standin.home, TOKEN) == []  # ...which never held the token
    again = await _ask(recorded, "Password for 'https://x-access-token@github.com': ")
    assert again.returncode == 1 and TOKEN not in again.stdout
    assert TOKEN not in caplog.text and env[devpod.NONCE_ENV] not in caplog.text


async def test_a_clone_whose_nonce_is_used_up_fails_like_git(settings, standin):
    git = devpod.GitAccess.for_settings(settings)
    env = await git.grant(TOKEN, uses=1)  # one answer: the fetch of pull/1/head gets nothing
    try:
        result = await devpod.run(up(settings), settings=settings, timeout=20, masker=Masker([TOKEN]), env_extra=env)
    finally:
        git.finish(env)
    assert not result.ok
    assert "clone repository: exit status 128" in [ln.message for ln in result.lines]


async def test_a_token_devpod_wrote_to_disk_is_scrubbed_after_the_run(settings, standin, caplog):
    caplog.set_level(logging.DEBUG)
    git = devpod.GitAccess.for_settings(settings)
    env = await git.grant(TOKEN)
    # The old way: the token in DevPod's environment, which v0.6.15 writes to workspace_result.json.
    leaky = {**env, "DEVENV_GIT_TOKEN": TOKEN}
    result = await devpod.run(up(settings), settings=settings, timeout=20, masker=Masker([TOKEN]), env_extra=leaky)
    assert result.ok
    written = standin.home / "contexts" / "default" / "workspaces" / "hello-world-pr1-abcdef" / "workspace_result.json"
    assert TOKEN in written.read_text()
    mode = stat.S_IMODE(written.stat().st_mode)
    assert git.finish(leaky) == [written]
    assert files_holding(standin.home, TOKEN) == []
    assert json.loads(written.read_text())["SubstitutionContext"]["Env"]["DEVENV_GIT_TOKEN"] == "***"
    assert stat.S_IMODE(written.stat().st_mode) == mode
    assert "scrubbed a credential" in caplog.text and TOKEN not in caplog.text


def test_scrub_reads_only_devpods_recent_state_files(tmp_path):
    home = tmp_path / "home"
    state = home / "contexts" / "default" / "workspaces" / "w" / "workspace.json"
    checkout = home / "agent" / "contexts" / "default" / "workspaces" / "w" / "content" / "notes.txt"
    old = home / "contexts" / "default" / "old.json"
    escaped = home / "escaped.json"
    for p in (state, checkout, old, escaped):
        p.parent.mkdir(parents=True, exist_ok=True)
    secret = 'tok"en\\value'
    state.write_text(f"token={secret}")
    escaped.write_text(json.dumps({"t": secret}))
    checkout.write_text(secret)
    old.write_text(secret)
    os.utime(old, (1_000_000, 1_000_000))
    (home / "link").symlink_to(checkout)
    assert sorted(scrub(home, [secret], since=2_000_000)) == sorted([state, escaped])
    assert state.read_text() == "token=***" and json.loads(escaped.read_text()) == {"t": "***"}
    assert checkout.read_text() == secret and old.read_text() == secret  # the PR's checkout; older than the token


async def test_a_state_dir_too_deep_for_a_socket_path_gets_a_private_socket_directory(tmp_path):
    deep = tmp_path / ("d" * 60) / ("e" * 60) / "askpass"
    git = devpod.GitAccess(deep, tmp_path / "home", ttl=60)
    env = await git.grant(TOKEN)
    try:
        sock = Path(env[devpod.SOCKET_ENV])
        assert deep not in sock.parents and stat.S_IMODE(sock.parent.stat().st_mode) == 0o700
        assert (await _ask(env, "Password: ")).stdout == TOKEN + "\n"
    finally:
        git.finish(env)
    assert not sock.parent.exists()
