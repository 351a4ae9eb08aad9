"""The SSH gateway end to end, with real OpenSSH clients: ``ssh``, ``scp``, ``sftp`` and ``ssh -L``.

The real bot app (webhooks over a real socket) builds the PR's environment with the stand-in
``devpod``; the gateway listens on a free port; users' keys are served by the GitHub emulator's
``GET /users/{username}/keys``; behind the gateway, the stand-in's ``ssh --stdio`` runs a real
``sshd -i`` (Debian's openssh-server) with a throwaway config made here, so every hop is real.
Skipped only when ``sshd`` is absent outside CI; in CI (``CI=true``) they must run.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
from pathlib import Path

import pytest

from bot.gateway import keys
from bot.settings import config
from tests import payloads
from tests.botserver import BotServer
from tests.eventually import eventually
from tests.github_emulator.user_keys import set_user_keys
from tests.observe import sticky

SSHD = shutil.which("sshd", path="/usr/sbin:/usr/local/sbin:" + os.environ.get("PATH", ""))
SSH = shutil.which("ssh")
OWNER, REPO = "Codertocat", "Hello-World"
WS = "hello-world-pr2-4d960c"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif((SSHD is None or SSH is None) and os.environ.get("CI") != "true",
                       reason="needs OpenSSH's sshd and ssh (apt-get install openssh-server openssh-client)"),
]


def keygen(path: Path) -> str:
    """A fresh Ed25519 key pair at ``path``; returns the public line."""
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", path.name, "-f", str(path)], check=True)
    return (path.parent / (path.name + ".pub")).read_text().strip()


def prepare_sshd(devpod_home: Path, state_dir: Path) -> None:
    """The workspace's SSH server: a config, host key and the gateway's client key authorized, for ``sshd -i``."""
    rig = devpod_home / "standin-sshd"
    rig.mkdir(parents=True)
    keygen(rig / "host_ed25519")
    client = keys.client_key(state_dir)  # made before the bot starts; the gateway uses the same file
    (rig / "authorized_keys").write_text(client.export_public_key().decode())
    (rig / "sshd_config").write_text(
        f"HostKey {rig / 'host_ed25519'}\nAuthorizedKeysFile {rig / 'authorized_keys'}\n"
        "PubkeyAuthentication yes\nPasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\n"
        "StrictModes no\nPermitRootLogin prohibit-password\nAllowTcpForwarding yes\nPidFile none\n"
        "LogLevel ERROR\nSubsystem sftp internal-sftp\n")
    if os.geteuid() == 0:
        os.makedirs("/run/sshd", mode=0o755, exist_ok=True)  # sshd's privilege separation directory


class Client:
    """One user's OpenSSH client: a key of their own, a known_hosts of their own, batch mode."""

    def __init__(self, tmp: Path, login: str, port: int) -> None:
        self.dir = tmp / f"client-{login}"
        self.dir.mkdir(exist_ok=True)
        self.login, self.port = login, port
        self.key = self.dir / "id_ed25519"
        self.public = keygen(self.key)

    def options(self) -> list[str]:
        return ["-o", "StrictHostKeyChecking=accept-new", "-o", f"UserKnownHostsFile={self.dir / 'known_hosts'}",
                "-i", str(self.key), "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes", "-F", "/dev/null"]

    @property
    def target(self) -> str:
        return f"{self.login}+{WS}@127.0.0.1"

    async def run(self, argv: list[str], stdin: bytes = b"", timeout: float = 60) -> subprocess.CompletedProcess:
        proc = await asyncio.create_subprocess_exec(*argv, stdin=asyncio.subprocess.PIPE,
                                                    stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        out, err = await asyncio.wait_for(proc.communicate(stdin), timeout)
        return subprocess.CompletedProcess(argv, proc.returncode, out, err)

    async def ssh(self, *command: str, stdin: bytes = b"") -> subprocess.CompletedProcess:
        return await self.run(["ssh", "-p", str(self.port), *self.options(), self.target, *command], stdin)


@pytest.fixture
def devenv_yml() -> str | None:
    """The repository's ``.github/devenv.yml`` at the PR's base (parametrize a test to set one)."""
    return None


@pytest.fixture
async def gateway_bot(environ, devpod, tmp_path, github, repo, devenv_yml):
    if devenv_yml is not None:
        pull = payloads.pull_request("opened")["pull_request"]
        for base in (pull["base"]["sha"], github.state.repo(OWNER, REPO).pulls[pull["number"]]["base_sha"]):
            github.set_file(OWNER, REPO, ".github/devenv.yml", devenv_yml, ref=base)  # the webhook's, the API's
    state = Path(environ["DEVENV_STATE_DIR"])
    prepare_sshd(devpod.home, state)
    env = {**environ, "DEVENV_SSH_PORT": "0", "DEVENV_SSH_HOST": "ssh.devenv.example.com",
           "DEVENV_SSH_PUBLIC_PORT": "2222"}
    srv = await start_with_running_pr(config.load(env))
    yield srv
    await srv.stop()


async def start_with_running_pr(settings) -> BotServer:
    """A gateway bot whose PR was opened and whose environment runs (sshd prepared beforehand)."""
    srv = await BotServer(settings).start()
    status, _ = await srv.deliver("pull_request", payloads.pull_request("opened"))
    assert status == 202
    await srv.settle()
    assert srv.bot.environments.records[WS].state == "running"
    return srv


def user(github, tmp_path, bot, login: str, role: str | None = "write") -> Client:
    client = Client(tmp_path, login, bot.bot.gateway.port)
    set_user_keys(github, login, [client.public])
    if role is not None:
        github.set_permission(OWNER, REPO, login, role)
    return client


async def test_a_writer_runs_a_command_and_gets_its_exit_status_and_its_bytes(gateway_bot, github, tmp_path):
    alice = user(github, tmp_path, gateway_bot, "alice")
    done = await alice.ssh("echo hello from $(hostname); echo to stderr >&2; exit 7")
    assert done.returncode == 7, done.stderr
    assert done.stdout.decode() == f"hello from {socket.gethostname()}\n"
    assert "to stderr" in done.stderr.decode()
    blob = bytes(range(256)) * 1024  # every byte value, 256 KiB: binary-safe both ways
    echoed = await alice.ssh("cat", stdin=blob)
    assert echoed.returncode == 0, echoed.stderr
    assert echoed.stdout == blob


async def test_scp_copies_a_file_both_ways_and_sftp_lists_the_workspace(gateway_bot, github, tmp_path):
    alice = user(github, tmp_path, gateway_bot, "alice")
    local = tmp_path / "payload.bin"
    local.write_bytes(os.urandom(100_000))
    workspace = gateway_bot.bot.settings.devpod.home / "standin-workspaces" / WS  # the stand-in's container files
    up = await alice.run(["scp", "-P", str(alice.port), *alice.options(), str(local),
                          f"{alice.target}:{workspace}/copied.bin"])
    assert up.returncode == 0, up.stderr
    assert (workspace / "copied.bin").read_bytes() == local.read_bytes()
    back = tmp_path / "back.bin"
    down = await alice.run(["scp", "-P", str(alice.port), *alice.options(), f"{alice.target}:{workspace}/copied.bin",
                            str(back)])
    assert down.returncode == 0, down.stderr
    assert back.read_bytes() == local.read_bytes()
    listing = await alice.run(["sftp", "-P", str(alice.port), *alice.options(), "-b", "-", alice.target],
                              stdin=f"ls -1 {workspace}\n".encode())
    assert listing.returncode == 0, listing.stderr
    assert "copied.bin" in listing.stdout.decode()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def test_ssh_L_forwards_a_local_port_to_a_port_served_in_the_workspace(gateway_bot, github, tmp_path):
    async def serve(reader, writer):
        writer.write(b"served from the workspace: " + await reader.readline())
        await writer.drain()
        writer.close()

    app = await asyncio.start_server(serve, "127.0.0.1", 0)
    app_port = app.sockets[0].getsockname()[1]
    alice = user(github, tmp_path, gateway_bot, "alice")
    local_port = free_port()
    forward = await asyncio.create_subprocess_exec(
        "ssh", "-p", str(alice.port), *alice.options(), "-N", "-o", "ExitOnForwardFailure=yes",
        "-L", f"127.0.0.1:{local_port}:127.0.0.1:{app_port}", alice.target,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
    try:
        async def answer() -> bytes:
            try:
                reader, writer = await asyncio.open_connection("127.0.0.1", local_port)
            except OSError:
                return b""
            writer.write(b"ping\n")
            data = await reader.read()
            writer.close()
            return data

        got = b""

        async def answered() -> bool:
            nonlocal got
            got = await answer()
            return bool(got)

        await eventually(answered, what="the forwarded port answers")
        assert got == b"served from the workspace: ping\n"
    finally:
        forward.terminate()
        await forward.wait()
        app.close()
        await app.wait_closed()


async def test_strangers_readers_bots_and_wrong_keys_are_refused_with_a_reason(gateway_bot, github, tmp_path):
    stranger = user(github, tmp_path, gateway_bot, "stranger", role=None)  # public repository: read
    done = await stranger.ssh("true")
    assert done.returncode == 255
    assert "stranger has read access to Codertocat/Hello-World; a shell needs write" in done.stderr.decode()

    reader = user(github, tmp_path, gateway_bot, "reader", role="triage")
    assert "reader has read access" in (await reader.ssh("true")).stderr.decode()

    robot = user(github, tmp_path, gateway_bot, "dependabot[bot]", role="write")
    refused = await robot.ssh("true")
    assert refused.returncode == 255 and "is an App's account" in refused.stderr.decode()

    mallory = Client(tmp_path, "mallory", gateway_bot.bot.gateway.port)  # claims to be alice with her own key
    set_user_keys(github, "alice", [keygen(tmp_path / "alice_real")])
    github.set_permission(OWNER, REPO, "alice", "admin")
    mallory.login = "alice"
    wrong = await mallory.ssh("true")
    assert wrong.returncode == 255
    assert "this key is not one of alice's SSH keys on GitHub" in wrong.stderr.decode()


async def test_a_permission_revoked_between_two_connections_refuses_the_second(gateway_bot, github, tmp_path):
    bob = user(github, tmp_path, gateway_bot, "bob", role="write")
    assert (await bob.ssh("true")).returncode == 0
    github.set_permission(OWNER, REPO, "bob", "read")
    second = await bob.ssh("true")
    assert second.returncode == 255
    assert "bob has read access" in second.stderr.decode()


async def test_failed_attempts_are_rate_limited_per_login(gateway_bot, github, tmp_path):
    gateway_bot.bot.gateway.doorman.guard.limit = 2
    eve = user(github, tmp_path, gateway_bot, "eve", role="read")
    for _ in range(2):
        assert "eve has read access" in (await eve.ssh("true")).stderr.decode()
    github.set_permission(OWNER, REPO, "eve", "write")  # even now: refused unheard until the failures age out
    blocked = await eve.ssh("true")
    assert blocked.returncode == 255
    assert "too many failed attempts" in blocked.stderr.decode()


async def test_the_sticky_comment_shows_the_gateway_line(gateway_bot, github):
    body = sticky(github)
    assert f"`ssh -p 2222 LOGIN+{WS}@ssh.devenv.example.com`" in body
    assert "<summary>For operators</summary>" in body


async def test_a_stray_key_offered_before_the_right_one_neither_blocks_nor_counts(gateway_bot, github, tmp_path):
    guard = gateway_bot.bot.gateway.doorman.guard
    guard.limit = 2
    carol = user(github, tmp_path, gateway_bot, "carol")
    stray = tmp_path / "stray_ed25519"
    keygen(stray)
    options = carol.options()
    options[options.index("-i") + 1] = str(stray)  # a key that is not on GitHub goes first, then carol's
    for _ in range(3):  # more connections than the limit: each got in, so none keeps its failure
        done = await carol.run(["ssh", "-p", str(carol.port), *options, "-i", str(carol.key), carol.target, "echo in"])
        assert done.returncode == 0, done.stderr
        assert done.stdout == b"in\n"
    assert guard.blocked("127.0.0.1", "carol") is None


async def test_stopping_the_bot_ends_open_sessions(environ, devpod, tmp_path, github, repo):
    state = Path(environ["DEVENV_STATE_DIR"])
    prepare_sshd(devpod.home, state)
    srv = await BotServer(config.load({**environ, "DEVENV_SSH_PORT": "0", "DEVENV_SSH_HOST": "ssh.example.com"})).start()
    try:
        await srv.deliver("pull_request", payloads.pull_request("opened"))
        await srv.settle()
        dave = user(github, tmp_path, srv, "dave")
        proc = await asyncio.create_subprocess_exec(
            "ssh", "-p", str(dave.port), *dave.options(), dave.target, "echo started; sleep 300",
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        assert await asyncio.wait_for(proc.stdout.readline(), 60) == b"started\n"
    finally:
        await srv.stop()
    assert await asyncio.wait_for(proc.wait(), 30) != 0  # the connection was closed, not left to the sleep
