"""The gateway's sessions beyond a command: a PTY that follows the window, waking a stopped environment,
and the accounting (idle stop, the session log, metrics, the host key and the ``/`` page).

Same rig as tests/test_gateway.py: the real bot, real OpenSSH clients, a real ``sshd -i`` behind the
DevPod stand-in.
"""

from __future__ import annotations

import asyncio
import fcntl
import logging
import os
import pty
import select
import stat
import struct
import termios
import time

import pytest

from bot.environments.journal import PullInfo
from tests.test_gateway import WS, devenv_yml, gateway_bot, pytestmark, user  # noqa: F401

__all__ = ["pytestmark"]


def set_window(fd: int, rows: int, cols: int) -> None:
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))


def read_until(fd: int, needle: bytes, timeout: float = 30) -> bytes:
    seen = b""
    deadline = time.monotonic() + timeout
    while needle not in seen:
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"{needle!r} never came; got {seen!r}")
        ready, _, _ = select.select([fd], [], [], left)
        if ready:
            try:
                chunk = os.read(fd, 4096)
            except OSError:
                break
            if not chunk:
                break
            seen += chunk
    return seen


async def test_an_interactive_shell_gets_a_pty_that_follows_window_changes(gateway_bot, github, tmp_path):
    alice = user(github, tmp_path, gateway_bot, "alice")
    master, slave = pty.openpty()
    set_window(slave, 24, 80)
    proc = await asyncio.create_subprocess_exec(
        "ssh", "-tt", "-p", str(alice.port), *alice.options(), alice.target,
        "stty size; tty; echo READY; while read line; do stty size; done; exit 3",
        stdin=slave, stdout=slave, stderr=slave, start_new_session=True)
    os.close(slave)
    loop = asyncio.get_running_loop()
    try:
        first = await loop.run_in_executor(None, read_until, master, b"READY")
        assert b"24 80" in first and b"/dev/pts/" in first  # a terminal of its own in the workspace
        set_window(master, 50, 132)
        proc.send_signal(28)  # SIGWINCH: ssh sends a window-change request
        for _ in range(60):  # ask again until the new size has travelled (no sleep decides it)
            os.write(master, b"x\r")
            try:
                await loop.run_in_executor(None, read_until, master, b"50 132", 1)
                break
            except AssertionError:
                continue
        else:
            raise AssertionError("the window change never reached the workspace")
        os.write(master, b"\x04")  # end of input: the loop ends, the shell exits 3
        assert await asyncio.wait_for(proc.wait(), 30) == 3
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        os.close(master)


async def stop(bot) -> None:
    manager = bot.bot.environments
    manager.request(PullInfo.of(manager.records[WS]), "stop", requested_by="test")
    await bot.settle()
    assert manager.records[WS].state == "stopped"


async def test_connecting_to_a_stopped_environment_wakes_it_with_one_progress_line(gateway_bot, github, tmp_path):
    await stop(gateway_bot)
    alice = user(github, tmp_path, gateway_bot, "alice")
    done = await alice.ssh("echo awake")
    assert done.returncode == 0, done.stderr
    assert done.stdout == b"awake\n"
    assert done.stderr.decode().count("devenv: the environment is stopped; waking it for you") == 1
    record = gateway_bot.bot.environments.records[WS]
    assert record.state == "running"
    assert record.last_action.verb == "up" and record.last_action.by == "alice"


@pytest.mark.parametrize("devenv_yml", ["permissions:\n  up: admin\n"])
async def test_a_stopped_environment_is_not_woken_by_someone_who_may_not_and_they_are_told_how(
        gateway_bot, github, tmp_path, devenv_yml):
    await stop(gateway_bot)
    alice = user(github, tmp_path, gateway_bot, "alice", role="write")
    done = await alice.ssh("echo awake")
    assert done.returncode == 1
    assert done.stdout == b""
    assert "someone with admin access can wake it with `/devenv up` on the pull request" in done.stderr.decode()
    assert gateway_bot.bot.environments.records[WS].state == "stopped"


async def test_a_session_counts_as_activity_is_logged_and_counted(gateway_bot, github, tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="bot.gateway.service")
    bot = gateway_bot.bot
    before = time.time()
    assert bot.environments.records[WS].active_via != "ssh"
    alice = user(github, tmp_path, gateway_bot, "alice")
    assert (await alice.ssh("true")).returncode == 0
    await asyncio.sleep(0)  # the connection's close runs as its own task

    async def logged() -> bool:
        return any("ssh session: alice on " + WS in r.getMessage() for r in caplog.records)

    from tests.eventually import eventually
    await eventually(logged, what="the session's log line")
    record = bot.environments.records[WS]
    assert record.active_at >= before and record.active_via == "ssh"  # what the idle reaper reads
    assert bot.reaper is None or bot.reaper.last_active(bot.environments.records[WS]) >= before
    metrics = bot.metrics.render().decode()
    assert "devenv_ssh_sessions_total 1.0" in metrics
    assert 'devenv_ssh_auth_total{outcome="allowed"} 1.0' in metrics
    assert "devenv_ssh_sessions_active 0.0" in metrics


async def test_the_host_key_is_made_once_kept_private_and_its_fingerprint_shown(gateway_bot, caplog):
    bot = gateway_bot.bot
    path = bot.settings.state_dir / "ssh" / "host_ed25519"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    fingerprint = bot.gateway.fingerprint
    assert fingerprint and fingerprint.startswith("SHA256:")
    async with gateway_bot.session.get(gateway_bot.url + "/") as resp:
        page = await resp.text()
    assert resp.status == 200
    assert fingerprint in page and "ssh -p 2222 <your GitHub login>+<workspace>@ssh.devenv.example.com" in page
    before = path.read_bytes()
    await bot.gateway.stop()
    await bot.gateway.start()  # a restart keeps the key (clients pinned it)
    assert path.read_bytes() == before and bot.gateway.fingerprint == fingerprint


@pytest.mark.parametrize("name", ["alice", "alice+no-such-pr1-abcdef", "al--ice+" + WS])
async def test_names_the_gateway_cannot_place_are_refused_with_a_reason(gateway_bot, github, tmp_path, name):
    alice = user(github, tmp_path, gateway_bot, "alice")
    done = await alice.run(["ssh", "-p", str(alice.port), *alice.options(), f"{name}@127.0.0.1", "true"])
    assert done.returncode == 255
    assert "devenv: " in done.stderr.decode()


async def test_when_devpod_cannot_reach_the_workspace_the_client_is_told_why(gateway_bot, github, tmp_path):
    (gateway_bot.bot.settings.devpod.home / "standin-sshd" / "sshd_config").unlink()  # no server in the "container"
    alice = user(github, tmp_path, gateway_bot, "alice")
    done = await alice.ssh("true")
    assert done.returncode == 1
    assert "devenv: " in done.stderr.decode() and "no ssh server" in done.stderr.decode()
