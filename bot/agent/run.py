"""One agent run: Claude Code in headless mode inside a PR's workspace, streamed and stoppable.

Design (details and sources in ``docs/agent.md``; facts in ``../shared/links-agent/FACTS.md`` §D).

* **Delivery.** One ``devpod ssh <id> --command <script>`` per run, through the one DevPod
  runner (:func:`bot.devpod.run`). The script and its stdin (the secrets, then the prompt)
  come from :mod:`bot.agent.remote`; no prompt and no secret is ever on a command line.
* **Following.** Every output line is masked by the runner, then read as a marker from the
  script (the agent's PID, its exit status, a missing program) or as a stream-json event
  (:mod:`bot.agent.stream`) fed to a bounded :class:`~bot.agent.progress.Progress`; the
  caller's ``on_progress`` sees it after every event.
* **Stopping.** Signals do not cross ``devpod ssh``; killing it can orphan the remote
  agent. To cancel (or on the time limit) a second ``devpod ssh`` sends SIGINT to *this
  run* (by its run id, :func:`~bot.agent.remote.signal_command`), and the agent then writes
  a clean final result and exits 0; after a grace period SIGTERM (exit 143, no result),
  then SIGKILL, then the local process group. ``devpod ssh`` starts a stopped workspace
  (even with ``--start-services=false``; CONTRACT §9), so every signal first asks
  ``may_signal`` (is the workspace running?) and, if not, only the local side is dropped.
* **Aborting.** ``abort`` (the environment is about to be stopped, rebuilt or deleted) ends
  the run at once without any remote signal: the local ``devpod ssh`` process group is
  killed (a real ``devpod ssh`` would hang forever once its container stops; CONTRACT §9)
  and whatever signal is on its way is cancelled.
* **Outcome.** Success is decided by the final ``result`` frame's ``is_error`` (auth and
  API failures end with ``subtype: success``; FACTS §D), never by an exit code alone:
  :func:`_outcome` is a pure function of what the run saw.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import inspect
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Literal

from bot import devpod
from bot.agent.progress import Progress
from bot.agent.remote import new_run_id, parse_marker, remote_script, signal_command, stdin_payload
from bot.agent.stream import Denial, parse_stream_line
from bot.settings.agent import AgentSettings

__all__ = ["MISSING_AGENT_HELP", "AgentResult", "Outcome", "run_agent"]

log = logging.getLogger(__name__)

MISSING_AGENT_HELP = (
    "The coding agent (`{program}`) is not installed in this environment. Add it to the "
    "repository's `.devcontainer/devcontainer.json`, then recreate the environment:\n\n"
    "* as a dev container feature: "
    '`"features": {{"ghcr.io/anthropics/devcontainer-features/claude-code:1": {{}}}}`, or\n'
    "* with npm in the image or a lifecycle hook: `npm install -g @anthropic-ai/claude-code` "
    "(needs Node.js 22 or newer; on older Node npm silently installs an outdated version)."
)

Outcome = Literal["success", "failure", "cancelled", "timed_out", "missing_agent"]
StopReason = Literal["cancelled", "timed_out"]
Signal = Literal["INT", "TERM", "KILL"]
OnProgress = Callable[[Progress], Awaitable[None] | None]
MaySignal = Callable[[], Awaitable[bool]]


@dataclasses.dataclass(frozen=True)
class AgentResult:
    outcome: Outcome
    #: The agent's exit status as the remote script saw it; None if it never reported one.
    exit_code: int | None
    #: The agent's final text, or an explanation of what went wrong (masked, not escaped).
    final_message: str
    permission_denials: list[Denial]
    progress: Progress
    #: The last raw output lines (stderr, non-JSON stdout, DevPod errors), masked.
    tail: list[str]
    #: ``devpod ssh``'s own exit code (1 for any remote failure; CONTRACT §3).
    ssh_exit_code: int | None = None

    @property
    def ok(self) -> bool:
        return self.outcome == "success"


async def _call(callback: OnProgress | None, progress: Progress) -> None:
    if callback is None:
        return
    try:
        result = callback(progress)
        if inspect.isawaitable(result):
            await result
    except Exception:  # a failing progress update must not kill (or orphan) the agent
        log.exception("agent progress callback failed")


class _AgentProcess:
    """The moving parts of one run: the ``devpod ssh`` task, what the script reported, the progress."""

    def __init__(
        self,
        dp: devpod.DevPodSettings,
        ws_id: str,
        settings: AgentSettings,
        masker: devpod.Masker,
        on_progress: OnProgress | None,
        user: str | None,
        workdir: str | None,
        run_id: str,
        may_signal: MaySignal | None,
    ) -> None:
        self.dp, self.ws_id, self.settings, self.masker = dp, ws_id, settings, masker
        self.on_progress, self.user, self.workdir = on_progress, user, workdir
        self.run_id, self.may_signal = run_id, may_signal
        self.argv = self._ssh(remote_script(settings, run_id))
        self.progress = Progress(
            max_messages=settings.max_messages, max_tail_lines=settings.max_tail_lines, mask=masker.mask
        )
        self.pid: int | None = None
        self.rc: int | None = None
        self.missing: str | None = None

    def _ssh(self, command: str) -> list[str]:
        return devpod.ssh_command_argv(self.dp, self.ws_id, command, user=self.user, workdir=self.workdir)

    async def on_line(self, line: devpod.LogLine) -> None:
        """One output line: a marker from the script, a stream-json event, or raw text for the tail."""
        if line.stream != "stdout":
            self.progress.add_raw(line.text or line.message)
            return
        marker = parse_marker(line.text)
        if marker is not None:
            kind, value = marker
            if kind == "pid" and self.pid is None:  # the first one is the script's; the agent comes after it
                self.pid = int(value)
            elif kind == "rc":
                self.rc = int(value)  # the last one wins: the script prints it after the agent ended
            elif kind == "missing" and self.pid is None:  # only the script speaks before the agent starts
                self.missing = self.settings.command[0]
            return
        event = parse_stream_line(line.text)
        if event is None:
            return
        self.progress.feed(event)
        await _call(self.on_progress, self.progress)

    def start(self, payload: bytes) -> asyncio.Task[devpod.RunResult]:
        # The runner's own limit is a backstop; the agent's time limit is enforced in follow() so
        # the remote process can be stopped cleanly first.
        s = self.settings
        backstop = s.timeout + s.interrupt_grace + 3 * s.term_grace + 3 * s.signal_timeout
        return asyncio.ensure_future(
            devpod.run(
                self.argv, settings=self.dp, timeout=backstop, masker=self.masker, on_line=self.on_line,
                stdin_data=payload, max_lines=20, max_line_bytes=s.max_line_bytes, max_stdout_bytes=0,
            )
        )  # fmt: skip

    async def send(self, sig: Signal) -> bool:
        """Signal the remote agent over a second ``devpod ssh``; False when the workspace is not
        running (a ``devpod ssh`` would start it). Failures are logged, not raised."""
        try:
            if self.may_signal is not None and not await self.may_signal():
                log.info("not signalling the agent in %s: the workspace is not running", self.ws_id)
                return False
            res = await devpod.run(
                self._ssh(signal_command(self.run_id, sig)),
                settings=self.dp, timeout=self.settings.signal_timeout, masker=self.masker,
            )  # fmt: skip
            if not res.ok:
                log.info("signal %s to agent run %s in %s: %s", sig, self.run_id, self.ws_id, "; ".join(res.errors(3)))
        except Exception:
            log.exception("could not signal the agent in %s", self.ws_id)
        return True

    async def stop(self, main: asyncio.Task[devpod.RunResult]) -> None:
        """SIGINT (the agent writes its final result), SIGTERM, SIGKILL, then the local side."""
        if self.pid is not None:  # else the agent has not started: dropping the connection is enough
            steps: list[tuple[Signal, float]] = [
                ("INT", self.settings.interrupt_grace), ("TERM", self.settings.term_grace),
                ("KILL", self.settings.term_grace),
            ]  # fmt: skip
            for sig, grace in steps:
                if not await self.send(sig):
                    break
                done, _ = await asyncio.wait({main}, timeout=grace)
                if done:
                    return
        main.cancel()

    async def follow(self, main: asyncio.Task[devpod.RunResult], cancel: asyncio.Event | None,
                     abort: asyncio.Event | None) -> StopReason | None:
        """Wait for the run, or stop it on ``cancel`` or the time limit, or drop it on ``abort``;
        None if it ended by itself."""
        loop = asyncio.get_running_loop()
        cancelled = asyncio.ensure_future(cancel.wait()) if cancel is not None else loop.create_future()
        aborted = asyncio.ensure_future(abort.wait()) if abort is not None else loop.create_future()
        waits = [cancelled, aborted]
        try:
            done, _ = await asyncio.wait({main, *waits}, timeout=self.settings.timeout,
                                         return_when=asyncio.FIRST_COMPLETED)
            if main in done:
                return None
            reason: StopReason = "timed_out" if not done else "cancelled"
            if not aborted.done():
                stopping = asyncio.ensure_future(self.stop(main))
                await asyncio.wait({stopping, aborted}, return_when=asyncio.FIRST_COMPLETED)
                if not stopping.done():  # aborted while signalling: the signal's devpod ssh is killed too
                    stopping.cancel()
                    await asyncio.gather(stopping, return_exceptions=True)
            main.cancel()  # kills the local devpod ssh process group (a no-op once it has ended)
            return reason
        finally:
            for waiter in waits:
                waiter.cancel()
                with contextlib.suppress(BaseException):
                    await waiter

    async def collect(self, main: asyncio.Task[devpod.RunResult]) -> int | None:
        """``devpod ssh``'s exit code (None if the run was cancelled); its errors join the tail."""
        try:
            run_result = await asyncio.shield(main)  # shielded: our own cancellation must not look like stop()'s
        except asyncio.CancelledError:
            if not main.cancelled():
                raise
            return None
        for ln in run_result.errors(5):
            if ln not in self.progress.tail:
                self.progress.add_raw(ln)
        return run_result.exit_code

    async def abandon(self, main: asyncio.Task[devpod.RunResult]) -> None:
        """The caller was cancelled (shutdown): interrupt the agent so it is not orphaned, then go."""
        if self.pid is not None and not main.done():  # send() asks may_signal first
            with contextlib.suppress(BaseException):
                await asyncio.wait_for(asyncio.shield(self.send("INT")), self.settings.signal_timeout)
        main.cancel()
        with contextlib.suppress(BaseException):
            await main


def _outcome(run: _AgentProcess, stop_reason: StopReason | None, ssh_exit: int | None) -> AgentResult:
    """What the run amounts to, from what it saw; the words are for the check run and the comment."""
    progress, rc = run.progress, run.rc
    final, tail, denials = progress.final, list(progress.tail), progress.permission_denials

    def result(outcome: Outcome, message: str) -> AgentResult:
        return AgentResult(outcome, rc, message, denials, progress, tail, ssh_exit)

    if run.missing is not None:
        return result("missing_agent", MISSING_AGENT_HELP.format(program=run.missing))
    if stop_reason == "cancelled":
        message = "The agent run was cancelled."
        if final is not None:
            message += f" It stopped cleanly ({final.terminal_reason or final.subtype})."
        elif rc is not None:
            message += f" It was stopped with exit code {rc}."
        return result("cancelled", message)
    if stop_reason == "timed_out":
        return result("timed_out", f"The agent did not finish within {_duration(run.settings.timeout)} and was stopped.")
    if final is not None:
        return result("success" if final.ok else "failure", final.message)
    if rc is not None:
        return result("failure", f"The agent exited with code {rc} without a final result.")
    return result("failure", f"The connection to the environment failed (devpod ssh exited with {ssh_exit}).")


async def run_agent(
    dp: devpod.DevPodSettings,
    ws_id: str,
    prompt: str,
    *,
    settings: AgentSettings,
    masker: devpod.Masker,
    on_progress: OnProgress | None = None,
    cancel: asyncio.Event | None = None,
    extra_env: Mapping[str, str] | None = None,
    user: str | None = None,
    workdir: str | None = None,
    run_id: str | None = None,
    may_signal: MaySignal | None = None,
    abort: asyncio.Event | None = None,
) -> AgentResult:
    """Run the agent in workspace ``ws_id`` with ``prompt`` and follow it to the end.

    ``on_progress(progress)`` (sync or async) runs after every stream event; throttle
    expensive updates in it. Setting ``cancel`` stops the agent (SIGINT, then SIGTERM,
    then SIGKILL); so does the time limit; each signal is sent only if ``may_signal()`` says
    the workspace is running. Setting ``abort`` drops the run at once, with no remote signal
    (it ends as cancelled). ``run_id`` names the run remotely (made here if not given).
    Raises :class:`~bot.agent.remote.AgentPromptError` for a prompt that cannot be sent.
    ``extra_env`` values are secrets: they travel like the API key and are masked everywhere.
    """
    payload = stdin_payload(prompt, settings, extra_env)
    masker.add(settings.api_key)
    for value in (extra_env or {}).values():
        masker.add(value)
    run = _AgentProcess(dp, ws_id, settings, masker, on_progress, user, workdir, run_id or new_run_id(), may_signal)
    main = run.start(payload)
    try:
        stop_reason = await run.follow(main, cancel, abort)
        ssh_exit = await run.collect(main)
    except BaseException:
        await run.abandon(main)
        raise
    return _outcome(run, stop_reason, ssh_exit)


def _duration(seconds: float) -> str:
    if seconds >= 3600 and seconds % 3600 == 0:
        return f"{int(seconds // 3600)} h"
    if seconds >= 60 and seconds % 60 == 0:
        return f"{int(seconds // 60)} min"
    return f"{seconds:g} s"
