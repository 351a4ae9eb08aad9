"""The gateway's side of a session: its own SSH connection to the workspace, through ``devpod ssh --stdio``.

``devpod ssh --stdio <id>`` (CONTRACT §3 and §7: what DevPod's generated ``ProxyCommand`` runs)
turns its stdin and stdout into a byte pipe to the SSH server DevPod runs in the workspace's
container.  The gateway starts it as a subprocess (an argv list, the minimal environment of
:func:`bot.devpod.process.build_env`, its own process group), hands one end of a socket pair to it
and runs an asyncssh client over the other.  The reviewer's channels are then opened on this
connection (:mod:`bot.gateway.sessions`); DevPod's home, the kubeconfig and every other
credential stay in the bot.

The connection authenticates with the gateway's client key (:mod:`bot.gateway.keys`) as the
user running the bot: DevPod's server accepts the tunnel whatever the name and key (the session
runs as the workspace's remote user), and the test rig's real ``sshd -i`` authorizes exactly that
key for that user.  The workspace's host key changes with each ``--stdio`` server and is not
checked: the pipe is already authenticated by DevPod.
"""

from __future__ import annotations

import asyncio
import contextlib
import getpass
import logging
import os
import signal
import socket
from collections import deque

import asyncssh

from bot.devpod.ids import check_id
from bot.devpod.masking import Masker
from bot.devpod.process import build_env
from bot.settings.devpod import DevPodSettings

log = logging.getLogger(__name__)

__all__ = ["Upstream", "stdio_argv"]

#: Seconds ``devpod ssh --stdio`` gets to set up the pipe and the SSH handshake to finish.
CONNECT_TIMEOUT = 120.0


def stdio_argv(settings: DevPodSettings, ws_id: str) -> list[str]:
    """argv for ``devpod ssh --stdio <id>`` (what DevPod's own ssh-config ``ProxyCommand`` runs)."""
    check_id(ws_id)
    return [settings.binary, "ssh", "--stdio", "--context", settings.context, "--agent-forwarding=false",
            "--log-output", "raw", ws_id]


class Upstream:
    """One SSH connection to one workspace; :meth:`open` it, :meth:`close` it when the client goes."""

    def __init__(self, settings: DevPodSettings, ws_id: str, key: asyncssh.SSHKey) -> None:
        self.settings, self.ws_id, self.key = settings, ws_id, key
        self.conn: asyncssh.SSHClientConnection | None = None
        self._proc: asyncio.subprocess.Process | None = None
        self._stderr: deque[str] = deque(maxlen=20)
        self._reader: asyncio.Task[None] | None = None
        self._mask = Masker().lines()  # token shapes, as for every line DevPod prints

    async def open(self) -> asyncssh.SSHClientConnection:
        ours, theirs = socket.socketpair()
        try:
            self._proc = await asyncio.create_subprocess_exec(
                *stdio_argv(self.settings, self.ws_id), stdin=theirs.fileno(), stdout=theirs.fileno(),
                stderr=asyncio.subprocess.PIPE, env=build_env(self.settings), start_new_session=True)
        finally:
            theirs.close()
        self._reader = asyncio.get_running_loop().create_task(self._read_stderr(), name=f"devpod-stdio-{self.ws_id}")
        try:
            self.conn = await asyncio.wait_for(asyncssh.connect(
                sock=ours, host=self.ws_id, username=getpass.getuser(), client_keys=[self.key], known_hosts=None,
                agent_path=None, config=[], preferred_auth="publickey", keepalive_interval=30),
                timeout=CONNECT_TIMEOUT)
        except (TimeoutError, OSError, asyncssh.Error) as exc:
            ours.close()
            await self.close()
            raise ConnectionError(self.why(exc)) from exc
        return self.conn

    def why(self, exc: BaseException) -> str:
        """A short reason for the client: DevPod's last error line, else the SSH error."""
        lines = [line for line in self._stderr if line.strip()]
        return lines[-1][:300] if lines else (str(exc) or type(exc).__name__)[:300]

    async def _read_stderr(self) -> None:
        assert self._proc is not None and self._proc.stderr is not None
        async for raw in self._proc.stderr:
            line = self._mask(raw.decode("utf-8", "replace").rstrip())  # the client may see the last one
            self._stderr.append(line)
            log.debug("devpod ssh --stdio %s: %s", self.ws_id, line)

    async def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            with contextlib.suppress(Exception):
                await self.conn.wait_closed()
        proc = self._proc
        if proc is not None and proc.returncode is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                await asyncio.wait_for(proc.wait(), self.settings.kill_grace)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(proc.pid, signal.SIGKILL)
                await proc.wait()
        if self._reader is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._reader, 2)
