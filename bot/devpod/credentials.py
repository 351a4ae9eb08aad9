"""Git credentials for the DevPod process that clones a private repository, kept out of its environment.

DevPod runs ``git`` on the bot host (CONTRACT §1.2) and v0.6.15 writes its whole process
environment to ``workspace_result.json`` in clear (§9). So the installation token is never put in
DevPod's environment nor its argv. :class:`GitAccess` instead gives the one DevPod process:

* ``GIT_ASKPASS``: a script (no secret in it) that runs :mod:`bot.devpod.askpass` with the bot's
  own Python, so it works from an installed wheel;
* ``DEVENV_ASKPASS_SOCKET``: a unix socket in a 0700 directory under the bot's state directory,
  served by the bot only while some operation holds a grant;
* ``DEVENV_ASKPASS_NONCE``: a random nonce bound to that operation. It is good for
  :data:`PR_CLONE_ASKS` answers (a PR clone is two git processes, ``git clone`` then
  ``git fetch origin pull/N/head``, and each asks once), for at most ``ttl`` seconds, and never
  after :meth:`GitAccess.finish` (the operation ended).

:meth:`GitAccess.finish` also scrubs DEVPOD_HOME of every token it handed out lately
(:mod:`bot.devpod.scrub`). Pair all this with the hardened context option
``SSH_INJECT_GIT_CREDENTIALS=false``, so nothing is forwarded into the workspace (§4.4). The token
and the nonce are never logged.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import secrets
import shlex
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path

from bot.core.files import write_atomic
from bot.devpod import askpass
from bot.devpod.scrub import scrub
from bot.settings.devpod import DevPodSettings

log = logging.getLogger(__name__)

__all__ = ["NONCE_ENV", "PR_CLONE_ASKS", "SOCKET_ENV", "GitAccess"]

SOCKET_ENV, NONCE_ENV = askpass.SOCKET_ENV, askpass.NONCE_ENV
#: Password prompts of one PR clone: ``git clone``, then ``git fetch origin pull/N/head:PR<N>`` (§1.2).
PR_CLONE_ASKS = 2
#: How long a handed-out token is remembered for scrubbing (installation tokens live one hour).
REMEMBER = 2 * 3600.0
#: A unix socket's path must fit ``sun_path`` (108 bytes on Linux, with the terminating NUL).
_MAX_SOCKET_PATH = 100
_READ_TIMEOUT = 5.0


@dataclasses.dataclass
class _Grant:
    token: str
    uses: int
    deadline: float  # monotonic


class GitAccess:
    """Hands the clone token to DevPod's git through the askpass helper; see the module docstring."""

    def __init__(self, directory: Path, home: Path, *, ttl: float, python: str = sys.executable,
                 clock: Callable[[], float] = time.monotonic, wall: Callable[[], float] = time.time) -> None:
        self.directory = directory
        self.home = home  # DEVPOD_HOME, scrubbed after each operation
        self.ttl = ttl
        self.python = python
        self.clock, self.wall = clock, wall
        self._grants: dict[str, _Grant] = {}
        self._handed: dict[str, float] = {}  # token -> wall time it was last handed out
        self._server: asyncio.AbstractServer | None = None
        self._socket: Path | None = None
        self._lock = asyncio.Lock()
        self.helper = directory / "git-askpass"

    @classmethod
    def for_settings(cls, dp: DevPodSettings) -> GitAccess:
        """In ``dp.askpass_dir``; a grant lasts at most as long as an ``up`` may (plus its kill grace)."""
        return cls(dp.askpass_directory, dp.home, ttl=dp.up_timeout + dp.kill_grace)

    # ------------------------------------------------------------------ granting
    async def grant(self, token: str, *, uses: int = PR_CLONE_ASKS) -> dict[str, str]:
        """env_extra for one DevPod process: the helper, the socket and a fresh nonce (never the token)."""
        if not token:
            raise ValueError("empty token")
        nonce = secrets.token_urlsafe(32)
        async with self._lock:
            self._prune()
            await self._open()
            assert self._socket is not None
            self._grants[nonce] = _Grant(token, uses, self.clock() + self.ttl)
        self._handed[token] = self.wall()
        return {"GIT_ASKPASS": str(self.helper), "GIT_TERMINAL_PROMPT": "0",
                SOCKET_ENV: str(self._socket), NONCE_ENV: nonce}

    def finish(self, env_extra: Mapping[str, str] | None = None) -> list[Path]:
        """The DevPod process that was given ``env_extra`` has ended: its nonce is worthless from now
        on, and DEVPOD_HOME is scrubbed of the tokens handed out lately. Returns the files scrubbed."""
        nonce = (env_extra or {}).get(NONCE_ENV)
        if nonce is not None and self._grants.pop(nonce, None) is not None:
            log.debug("git askpass: an operation's nonce was revoked")
        self._prune()
        if not self._grants:
            self._close()
        if not self._handed:
            return []
        return scrub(self.home, self._handed, since=min(self._handed.values()))

    def answer(self, nonce: str) -> str | None:
        """The token for one use of ``nonce``, or None: unknown, used up, expired or revoked."""
        self._prune()
        grant = self._grants.get(nonce)
        if grant is None:
            return None
        grant.uses -= 1
        if grant.uses <= 0:
            del self._grants[nonce]
        return grant.token

    def _prune(self) -> None:
        now, wall = self.clock(), self.wall()
        for nonce in [n for n, g in self._grants.items() if g.deadline <= now]:
            del self._grants[nonce]
        for token in [t for t, at in self._handed.items() if wall - at > REMEMBER]:
            del self._handed[token]

    # ------------------------------------------------------------------ the socket
    async def _open(self) -> None:
        if self._server is not None:
            return
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(self.directory, 0o700)
        self._write_helper()
        path = self.directory / "askpass.sock"
        if len(os.fsencode(path)) > _MAX_SOCKET_PATH:  # too long for sun_path: a private directory of its own
            path = Path(tempfile.mkdtemp(prefix="devenv-askpass-")) / "askpass.sock"
        path.unlink(missing_ok=True)
        self._server = await asyncio.start_unix_server(self._serve, path=str(path))
        os.chmod(path, 0o600)
        self._socket = path

    def _close(self) -> None:
        if self._server is None:
            return
        self._server.close()
        self._server = None
        if self._socket is not None:
            self._socket.unlink(missing_ok=True)
            if self._socket.parent != self.directory:
                with contextlib.suppress(OSError):
                    self._socket.parent.rmdir()
            self._socket = None

    async def close(self) -> None:
        """Revoke every grant and stop serving (the bot stops)."""
        self._grants.clear()
        server = self._server
        self._close()
        if server is not None:
            await server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            async with asyncio.timeout(_READ_TIMEOUT):
                line = await reader.readline()
            token = self.answer(line.decode("ascii", "replace").strip()) if line.endswith(b"\n") else None
            if token is None:
                log.warning("git askpass: refused a request (its nonce is used up, expired, revoked or unknown)")
                writer.write(b"refused\n")
            else:
                log.info("git askpass: handed the clone token to DevPod's git")
                writer.write(b"ok " + token.encode() + b"\n")
            await writer.drain()
        except (TimeoutError, OSError, ValueError):
            pass  # a helper that sent nothing in time, or went away: it gets nothing
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    def _write_helper(self) -> None:
        """The ``GIT_ASKPASS`` script (mode 0700): this Python, isolated, running :mod:`bot.devpod.askpass`."""
        module = Path(askpass.__file__).resolve()
        text = ("#!/bin/sh\n# git askpass helper written by devenv-bot. It holds no secret: the token comes from\n"
                "# the bot, once per nonce, over the socket named in the environment.\n"
                f"exec {shlex.quote(self.python)} -I -S {shlex.quote(str(module))} \"$@\"\n")
        try:
            if self.helper.read_text() == text and (self.helper.stat().st_mode & 0o777) == 0o700:
                return
        except OSError:
            pass
        write_atomic(self.helper, text, mode=0o700)
