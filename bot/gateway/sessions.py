"""One client connection: authentication, then each channel bridged to the workspace.

:class:`ClientConnection` is asyncssh's per-connection server object.  Public-key authentication
asks the :class:`~bot.gateway.identity.Doorman` (once per offered key: OpenSSH first asks whether
a key would do, then signs with it); a refusal is sent to the client as an authentication banner,
one line that OpenSSH prints before "Permission denied".  Passwords and keyboard-interactive are
not offered.  A key the doorman finds :class:`~bot.gateway.identity.Unlinked` is accepted (so the
client proves it holds it by signing) but the connection stays pending: its first session channel
prints the sign-in link and waits for it (:meth:`Gateway.link
<bot.gateway.service.Gateway.link>`) before anything reaches the workspace.

After authentication the first channel opens the gateway's own connection to the workspace
(:class:`~bot.gateway.upstream.Upstream`, waking a stopped environment first through
:meth:`Gateway.ready <bot.gateway.service.Gateway.ready>`); every channel of the client then
becomes a channel on it:

* a session (:func:`bridge`): ``exec`` with the command's real exit status (or signal), a shell,
  a PTY with its terminal type, modes and window changes, and the ``sftp`` subsystem (which
  ``scp`` uses since OpenSSH 9); bytes pass through untouched (``encoding=None``);
* ``direct-tcpip`` (``ssh -L``, VS Code Remote-SSH, JetBrains Gateway): a TCP connection opened
  from inside the workspace.

Agent forwarding, X11, remote forwards (``-R``) and Unix sockets are refused.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, Protocol

import asyncssh
from asyncssh.constants import EXTENDED_DATA_STDERR
from asyncssh.stream import SSHReader, SSHWriter

from bot.gateway.identity import Allowed, Doorman, Refused, Unlinked
from bot.gateway.upstream import Upstream

log = logging.getLogger(__name__)

__all__ = ["MAX_KEYS", "ClientConnection", "Gateway", "bridge"]

#: Distinct (user name, key) pairs one connection may try, like OpenSSH's ``MaxAuthTries``.
MAX_KEYS = 6


class Gateway(Protocol):
    """What a connection calls back into (:class:`bot.gateway.service.Gateway`)."""

    @property
    def doorman(self) -> Doorman: ...
    def track(self, coro: Coroutine[Any, Any, Any], *, name: str) -> None: ...
    def counted(self, verdict: Allowed | Unlinked | Refused) -> None: ...
    async def link(self, unlinked: Unlinked, source: str, say: Callable[[str], None]) -> Allowed: ...
    async def ready(self, allowed: Allowed, say: Callable[[str], None]) -> None: ...
    def upstream_for(self, ws_id: str) -> Upstream: ...
    def opened(self, connection: ClientConnection) -> None: ...
    def ended(self, connection: ClientConnection) -> None: ...


class ClientConnection(asyncssh.SSHServer):
    """asyncssh's server object for one client: who it is, and its connection to the workspace."""

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        self.conn: asyncssh.SSHServerConnection | None = None
        self.source = "?"
        self.allowed: Allowed | None = None
        self.unlinked: Unlinked | None = None  # authenticated with a key waiting to be linked
        self.started = time.time()
        self._verdicts: dict[tuple[str, bytes], Allowed | Unlinked | Refused] = {}  # (user name, key) -> the answer
        self._told: set[str] = set()
        self._failed: str | None = None  # the user name a failure was counted for (once per connection)
        self._upstream: Upstream | None = None
        self._opening: asyncio.Task[asyncssh.SSHClientConnection] | None = None

    # -- the connection
    def connection_made(self, conn: asyncssh.SSHServerConnection) -> None:
        self.conn = conn
        peer = conn.get_extra_info("peername")
        self.source = str(peer[0]) if peer else "?"

    def connection_lost(self, exc: Exception | None) -> None:
        self.gateway.track(self.close(), name="ssh-close")

    async def close(self) -> None:
        if self._opening is not None and not self._opening.done():
            self._opening.cancel()
        if self._upstream is not None:
            await self._upstream.close()
        if self.allowed is not None:
            self.gateway.ended(self)

    # -- authentication
    def begin_auth(self, username: str) -> bool:
        return True

    def public_key_auth_supported(self) -> bool:
        return True

    async def validate_public_key(self, username: str, key: asyncssh.SSHKey) -> bool:
        verdict = self._verdicts.get((username, key.public_data))
        if verdict is None:
            if len(self._verdicts) >= MAX_KEYS:
                verdict = Refused(f"more than {MAX_KEYS} keys tried; use -i with the key on your GitHub account")
            else:
                verdict = await self.gateway.doorman.decide(username, key, self.source)
                self._verdicts[(username, key.public_data)] = verdict
            self.gateway.counted(verdict)
        if isinstance(verdict, (Allowed, Unlinked)):
            return True
        if verdict.counted and self._failed is None:
            self._failed = username
            self.gateway.doorman.failed(username, self.source)
        if verdict.why not in self._told and self.conn is not None:
            self._told.add(verdict.why)
            self.conn.send_auth_banner(f"devenv: {verdict.why}\r\n")
        log.info("ssh: refused %s from %s: %s", username, self.source, verdict.why)
        return False

    def auth_completed(self) -> None:
        """Who got in: the answer for the user name that authenticated (a client may try several)."""
        assert self.conn is not None
        username = self.conn.get_extra_info("username")
        accepted = [v for (user, _), v in self._verdicts.items() if user == username and not isinstance(v, Refused)]
        allowed = [v for v in accepted if isinstance(v, Allowed)]
        if allowed:
            self.allowed = allowed[0]
        else:
            self.unlinked = next(v for v in accepted if isinstance(v, Unlinked))
        if self._failed is not None:
            self.gateway.doorman.forgive(self._failed, self.source)

    # -- the workspace side, opened once for all channels
    async def upstream(self, say: Any) -> asyncssh.SSHClientConnection:
        """The connection to the workspace; the first caller wakes the environment and opens it."""
        if self._opening is None:
            self._opening = asyncio.get_running_loop().create_task(self._open(say), name="ssh-upstream")
        return await asyncio.shield(self._opening)

    async def _open(self, say: Any) -> asyncssh.SSHClientConnection:
        if self.allowed is None and self.unlinked is not None:
            self.allowed = await self.gateway.link(self.unlinked, self.source, say)
        assert self.allowed is not None
        await self.gateway.ready(self.allowed, say)
        self._upstream = self.gateway.upstream_for(self.allowed.record.ws_id)
        self.gateway.opened(self)
        return await self._upstream.open()

    # -- sessions: every one bridged, whatever its subsystem
    def session_requested(self) -> BridgedSession:
        return BridgedSession(bridge, None, 3, False)

    # -- port forwarding: -L only
    def connection_requested(self, dest_host: str, dest_port: int, orig_host: str, orig_port: int) -> Any:
        return self._forward(dest_host, dest_port)

    async def _forward(self, dest_host: str, dest_port: int) -> Any:
        assert self.conn is not None
        upstream = await self.upstream(lambda _line: None)
        return await self.conn.forward_tunneled_connection(upstream, dest_host, dest_port)

    def server_requested(self, listen_host: str, listen_port: int) -> bool:
        return False


class BridgedSession(asyncssh.SSHServerProcess[bytes]):
    """A session whose ``sftp`` subsystem goes to the workspace like any other request.

    asyncssh answers ``sftp`` itself (its own SFTP server, or a refusal without one); the gateway
    wants the workspace's.  ``session_started`` is asyncssh's own (2.x, ``stream.py``) minus that
    special case, so it touches the channel's private parts; ``asyncssh>=2.24,<3`` is pinned.
    """

    def subsystem_requested(self, subsystem: str) -> bool:
        return True

    def session_started(self) -> None:
        chan = self._chan
        stdin: SSHReader[bytes] = SSHReader(self, chan)
        handler = self._start_process(stdin, SSHWriter(self, chan), SSHWriter(self, chan, EXTENDED_DATA_STDERR))
        if self._conn is not None and asyncio.iscoroutine(handler):
            self._conn.create_task(handler, stdin.logger)


async def bridge(process: asyncssh.SSHServerProcess[bytes]) -> None:
    """One session channel: run it on the workspace and pass everything through, exit status included."""
    owner = process.get_extra_info("connection").get_owner()
    assert isinstance(owner, ClientConnection)

    def say(line: str) -> None:
        process.stderr.write(f"devenv: {line}\r\n".encode())

    try:
        upstream = await owner.upstream(say)
    except Exception as exc:  # a stopped environment nobody may wake, DevPod failing: say so, exit 1
        log.info("ssh: no session on %s for %s: %s", owner.allowed.record.ws_id if owner.allowed else "?",
                 owner.allowed.login if owner.allowed else "?", exc, exc_info=not isinstance(exc, ConnectionError))
        say(str(exc) or type(exc).__name__)
        process.exit(1)
        return
    remote = await _remote_process(upstream, process)
    await process.redirect(stdin=remote.stdin, stdout=remote.stdout, stderr=remote.stderr)
    await remote.wait_closed()
    await _settle(process.stdout.drain())
    if remote.exit_signal is not None:
        signal_name, core, message, language = remote.exit_signal
        process.exit_with_signal(signal_name, core, message, language)
    else:
        process.exit(remote.exit_status if remote.exit_status is not None else 255)


async def _remote_process(upstream: asyncssh.SSHClientConnection,
                          process: asyncssh.SSHServerProcess[bytes]) -> asyncssh.SSHClientProcess[bytes]:
    if process.subsystem:
        return await upstream.create_process(subsystem=process.subsystem, encoding=None)
    pty: dict[str, Any] = {}
    if process.term_type:
        pty = {"term_type": process.term_type, "term_size": process.term_size, "term_modes": process.term_modes}
    return await upstream.create_process(process.command, encoding=None, **pty)


async def _settle(awaitable: Awaitable[Any]) -> None:
    with contextlib.suppress(OSError, asyncssh.Error, BrokenPipeError):
        await awaitable
