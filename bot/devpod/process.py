"""The one place the bot runs DevPod: :func:`run` executes one argv list and collects its output.

Design. Everything else in :mod:`bot.devpod` is pure; this module is the only I/O. It
runs one argv list (never a shell string) with:

* a minimal environment built from scratch (``DEVPOD_FLAGS_UP`` and friends from the bot's
  own environment would silently change ``up``; CONTRACT §1.1), see :func:`build_env`;
* stdin from ``/dev/null`` (DevPod only prompts when it has a TTY; CONTRACT §1.4), or the
  given bytes, which ``devpod ssh`` forwards to the remote command;
* its own process group, so signals reach the git and agent processes DevPod starts;
* stdout and stderr read concurrently, line by line, with bounded line length, every line
  masked by a :class:`~bot.devpod.masking.Masker` before anything stores or logs it
  (:class:`_Output`);
* a wall-clock timeout: SIGTERM to the child's process group, SIGKILL after a grace
  period. Cancelling the awaiting task does the same, so a ``delete`` can cancel an
  in-flight ``up`` (the per-workspace flock is released when the process dies). DevPod
  v0.6.15 has no SIGTERM handler: it dies at once (exit -15) with no fatal line and leaves
  whatever it had started as it was, a running container with unfinished hooks included
  (CONTRACT §9). So the output says nothing about the end: :attr:`RunResult.signal` tells the
  caller, which reports from its own side what was running and checks the state afterwards.

The one other read of DevPod's files is the commit its clone checked out
(:func:`checked_out_commit`): the Kubernetes provider clones on the bot's host into
``agent/contexts/<ctx>/workspaces/<id>/content`` (CONTRACT §1.2), and its ``.git/HEAD`` is read
as plain files, so no git process ever runs in a directory an untrusted PR filled.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import inspect
import json
import os
import re
import shutil
import signal
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

from bot.devpod.ids import check_id
from bot.devpod.masking import Masker
from bot.devpod.parse import LogLine, meaningful_errors, parse_log_line
from bot.settings.devpod import DevPodSettings

__all__ = ["RunResult", "build_env", "checked_out_commit", "content_dir", "prepare_dirs", "run"]

#: Seconds a grandchild still holding the pipes gets after the child exited, before and after SIGKILL.
_DRAIN_GRACE = 1.0

OnLine = Callable[[LogLine], Awaitable[None] | None]


@dataclasses.dataclass(frozen=True)
class RunResult:
    argv: list[str]
    exit_code: int
    #: The last lines of stdout and stderr (masked), oldest first.
    lines: list[LogLine]
    timed_out: bool
    duration: float
    #: All of stdout (masked), up to a size cap; what ``parse_status`` and friends read.
    stdout: str = ""

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and not self.timed_out

    def errors(self, n: int = 10) -> list[str]:
        return meaningful_errors(self.lines, n)

    @property
    def signal(self) -> int | None:
        """The signal that ended the child (SIGTERM, SIGKILL), or None if it exited by itself."""
        return -self.exit_code if self.exit_code < 0 else None


def remove_agent_leftovers(settings: DevPodSettings, ws_id: str) -> None:
    """Remove ``agent/contexts/<ctx>/workspaces/<id>/`` from DEVPOD_HOME.

    A failed first ``up`` leaves it behind and ``delete`` does not remove it, the workspace not
    being in DevPod's local state (CONTRACT §9).
    """
    check_id(ws_id)
    shutil.rmtree(settings.home / "agent" / "contexts" / settings.context / "workspaces" / ws_id, ignore_errors=True)


def content_dir(settings: DevPodSettings, ws_id: str) -> Path:
    """Where DevPod's local agent clones the workspace's source on the bot's host (CONTRACT §1.2)."""
    check_id(ws_id)
    return settings.home / "agent" / "contexts" / settings.context / "workspaces" / ws_id / "content"


_OBJECT_ID = re.compile(r"[0-9a-f]{40}(?:[0-9a-f]{24})?")
_REF_NAME = re.compile(r"refs/[A-Za-z0-9._/-]{1,200}")


def _resolve_ref(git: Path, ref: str) -> str | None:
    """A ref's target as git stores it: a loose file under ``.git/``, else a line of ``packed-refs``."""
    if not _REF_NAME.fullmatch(ref) or ".." in ref.split("/"):
        return None
    with contextlib.suppress(OSError):
        return (git / ref).read_text("ascii", "replace")[:200].strip()
    with contextlib.suppress(OSError):
        for line in (git / "packed-refs").read_text("ascii", "replace").splitlines():
            sha, _, name = line.partition(" ")
            if name.strip() == ref:
                return sha
    return None


def checked_out_commit(settings: DevPodSettings, ws_id: str) -> str | None:
    """The commit DevPod's clone checked out (``.git/HEAD``, following its branch), or None if unknown.

    Read as plain files: ``git switch PR<N>`` and ``git reset --hard <sha>`` both leave HEAD
    naming a branch whose ref holds the commit.
    """
    git = content_dir(settings, ws_id) / ".git"
    try:
        head = (git / "HEAD").read_text("ascii", "replace")[:300].strip()
    except OSError:
        return None
    for _ in range(5):  # a symbolic ref may name another (git allows a few levels)
        if _OBJECT_ID.fullmatch(head):
            return head
        if not head.startswith("ref: "):
            return None
        found = _resolve_ref(git, head.removeprefix("ref: ").strip())
        if found is None:
            return None
        head = found
    return None


def prepare_dirs(settings: DevPodSettings) -> None:
    """Create DEVPOD_HOME, the ssh config directory and the child HOME (mode 0700)."""
    for d in (settings.home, settings.ssh_dir, settings.child_home):
        d.mkdir(parents=True, exist_ok=True, mode=0o700)


_FORBIDDEN_EXTRA = re.compile(r"^DEVPOD_FLAGS_|^DEVPOD_DEBUG$|^DEVPOD_CONFIG$")


def build_env(settings: DevPodSettings, env_extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The child's whole environment; nothing is inherited from ``os.environ``."""
    env = {
        "PATH": settings.path,
        "HOME": str(settings.child_home),
        "DEVPOD_HOME": str(settings.home),
        "DEVPOD_DISABLE_TELEMETRY": "true",
    }
    if settings.kubeconfig is not None:
        env["KUBECONFIG"] = str(settings.kubeconfig)
    for key, value in (env_extra or {}).items():
        if _FORBIDDEN_EXTRA.match(key):
            raise ValueError(f"{key} must not be passed to DevPod")
        env[key] = value
    return env


# --------------------------------------------------------------------------- output


@dataclasses.dataclass
class _Output:
    """What the runner keeps of the child's output: the last lines and stdout up to a cap, all masked."""

    masker: Masker
    on_line: OnLine | None
    max_stdout_bytes: int
    lines: deque[LogLine]
    stdout_parts: list[str] = dataclasses.field(default_factory=list)
    stdout_size: int = 0
    line_maskers: dict[str, Callable[[str], str]] = dataclasses.field(default_factory=dict)  # per stream

    async def emit(self, stream_name: str, raw: str) -> None:
        """Mask one line, keep it, and hand it to ``on_line`` (whose exceptions propagate)."""
        masked = self._line_masker(stream_name)(raw)
        if stream_name == "stdout" and self.stdout_size < self.max_stdout_bytes:
            self.stdout_parts.append(masked)
            self.stdout_size += len(masked) + 1
        line = parse_log_line(masked, stream_name)
        if line is None:
            return
        # Again on the message: a secret hidden by JSON escapes, or split across two of DevPod's JSON lines.
        message = self._line_masker(f"{stream_name} messages")(line.message)
        if message != line.message:
            text = line.text.replace(json.dumps(line.message)[1:-1], json.dumps(message)[1:-1])
            line = dataclasses.replace(line, message=message, text=text)
        self.lines.append(line)
        if self.on_line is not None:
            result = self.on_line(line)
            if inspect.isawaitable(result):
                await result

    def _line_masker(self, stream: str) -> Callable[[str], str]:
        """One masker per stream of consecutive lines, so a secret split across two lines is hidden too."""
        if stream not in self.line_maskers:
            self.line_maskers[stream] = self.masker.lines()
        return self.line_maskers[stream]


async def _read_lines(
    stream: asyncio.StreamReader, max_line: int, emit: Callable[[str], Awaitable[None]]
) -> None:
    """Emit each line of ``stream``, cut to ``max_line`` bytes (the rest of a long line is dropped)."""

    async def emit_cut(data: bytes, cut: bool) -> None:
        text = data[:max_line].decode("utf-8", "replace")
        await emit(text + " …[truncated]" if cut or len(data) > max_line else text)

    buf = b""
    dropping = False  # inside an overlong line whose head was already emitted
    while chunk := await stream.read(65536):
        buf += chunk
        while (nl := buf.find(b"\n")) >= 0:
            line, buf = buf[:nl], buf[nl + 1 :]
            if dropping:
                dropping = False
            else:
                await emit_cut(line, False)
        if len(buf) > max_line:
            if not dropping:
                await emit_cut(buf, True)
            dropping = True
            buf = b""
    if buf and not dropping:
        await emit_cut(buf, False)


# --------------------------------------------------------------------------- the child process


def _signal_group(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


async def _spawn(argv: list[str], env: dict[str, str], *, with_stdin: bool) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.PIPE if with_stdin else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
        start_new_session=True,  # own process group: signals reach git/agent children too
    )


async def _feed(proc: asyncio.subprocess.Process, data: bytes) -> None:
    """Write ``data`` to the child's stdin, then close it."""
    assert proc.stdin is not None
    try:
        proc.stdin.write(data)
        await proc.stdin.drain()
    except (BrokenPipeError, ConnectionResetError):
        pass  # the child exited without reading everything; its exit code tells the story
    finally:
        proc.stdin.close()


async def _terminate(proc: asyncio.subprocess.Process, grace: float) -> None:
    """SIGTERM to the group, SIGKILL after ``grace``; returns once the child is gone."""
    if proc.returncode is None:
        _signal_group(proc.pid, signal.SIGTERM)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(proc.wait(), grace)
    # Whatever is left in the group (including a child that ignored SIGTERM) is killed.
    _signal_group(proc.pid, signal.SIGKILL)
    await proc.wait()


async def _drain(proc: asyncio.subprocess.Process, readers: asyncio.Future[Any]) -> None:
    """The child is gone. Give a grandchild still holding the pipes a moment, then kill the group."""
    try:
        await asyncio.wait_for(asyncio.shield(readers), _DRAIN_GRACE)
    except TimeoutError:
        _signal_group(proc.pid, signal.SIGKILL)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(readers), _DRAIN_GRACE)


async def _supervise(
    proc: asyncio.subprocess.Process,
    readers: asyncio.Future[Any],
    waiter: asyncio.Future[int],
    timeout: float,
    grace: float,
) -> bool:
    """Wait for the child and its output within ``timeout``; True if it had to be stopped."""
    timed_out = False
    try:
        async with asyncio.timeout(timeout):
            pending: set[asyncio.Future[Any]] = {readers, waiter}
            done, _ = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            if readers in done:
                readers.result()  # re-raise an exception from on_line
            await waiter
    except TimeoutError:
        timed_out = True
        await _terminate(proc, grace)
    await _drain(proc, readers)
    return timed_out


async def _stop_after_error(proc: asyncio.subprocess.Process, grace: float) -> None:
    """The caller was cancelled or ``on_line`` raised: the child must not outlive the call."""
    try:
        await _terminate(proc, grace)
    finally:
        if proc.returncode is None:
            _signal_group(proc.pid, signal.SIGKILL)


async def _cleanup(
    waiter: asyncio.Future[int], feeder: asyncio.Future[None] | None, readers: asyncio.Future[Any]
) -> None:
    waiter.cancel()
    if feeder is not None:
        feeder.cancel()
        with contextlib.suppress(BaseException):
            await feeder
    if not readers.done():
        readers.cancel()
    with contextlib.suppress(BaseException):
        await readers


async def run(
    argv: list[str],
    *,
    settings: DevPodSettings,
    timeout: float,
    masker: Masker,
    env_extra: Mapping[str, str] | None = None,
    on_line: OnLine | None = None,
    max_lines: int = 200,
    max_line_bytes: int = 16 * 1024,
    max_stdout_bytes: int = 4 * 1024 * 1024,
    stdin_data: bytes | None = None,
) -> RunResult:
    """Run one DevPod argv and collect its masked output.

    ``stdin_data``, when given, is written to the child's stdin, which is then closed
    (``devpod ssh`` forwards it to the remote command); otherwise stdin is ``/dev/null``.

    Timeout and cancellation both stop the child's whole process group: SIGTERM (v0.6.15
    dies at once, exit -15, no fatal line), then SIGKILL after ``settings.kill_grace``.
    ``on_line`` (sync or async) sees every non-blank line as it arrives; an exception in
    it is not swallowed by the runner, it terminates the child and propagates.
    """
    env = build_env(settings, env_extra)
    output = _Output(masker, on_line, max_stdout_bytes, deque(maxlen=max_lines))
    started = time.monotonic()
    proc = await _spawn(argv, env, with_stdin=stdin_data is not None)
    assert proc.stdout is not None and proc.stderr is not None
    readers = asyncio.gather(
        _read_lines(proc.stdout, max_line_bytes, functools.partial(output.emit, "stdout")),
        _read_lines(proc.stderr, max_line_bytes, functools.partial(output.emit, "stderr")),
    )
    feeder = asyncio.ensure_future(_feed(proc, stdin_data)) if stdin_data is not None else None
    waiter = asyncio.ensure_future(proc.wait())
    try:
        timed_out = await _supervise(proc, readers, waiter, timeout, settings.kill_grace)
    except BaseException:
        await _stop_after_error(proc, settings.kill_grace)
        raise
    finally:
        await _cleanup(waiter, feeder, readers)
    assert proc.returncode is not None
    return RunResult(
        argv=[masker.mask(a) for a in argv],
        exit_code=proc.returncode,
        lines=list(output.lines),
        timed_out=timed_out,
        duration=time.monotonic() - started,
        stdout="\n".join(output.stdout_parts),
    )
