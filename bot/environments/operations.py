"""Operations: one DevPod step each, returning an :class:`Outcome`; they publish nothing.

The executor (:mod:`bot.environments.executor`) calls :meth:`Operations.step` while it holds a
DevPod slot and turns the outcome into a state change (:mod:`bot.environments.states`) and a
report.  Everything DevPod-shaped is here: the argv of each operation, the one fixed command
that looks into a workspace before a sync, the narrow clone token of private repositories, and
what DevPod's exit means (:func:`judge`).

Syncing a push: DevPod never changes an existing workspace's source, and the workspace must never
hold a credential to fetch with, so the bot first asks the workspace whether it has uncommitted
changes (``git status`` over ``devpod ssh``); if it does, syncing pauses and the comment says how to
go on; otherwise ``devpod up --reset`` re-clones the PR head on the bot's host and re-streams it
(the container is rebuilt, the volume kept).

Untrusted code is built only at the approved commit.  DevPod v0.6.15-hotfix.2 cannot be told to
build a fork PR's commit: ``<repo>@sha256:<sha>`` is a plain clone (branches and tags only) then
``git reset --hard <sha>``, which fails for a commit only ``refs/pull/N/head`` has, and an existing
workspace's stored source would pin every later ``--reset`` to that old commit.  So DevPod gets the
PR ref, which it fetches when it clones, and the check after ``up`` is what decides
(:meth:`Operations.verify`): the commit its clone checked out (read on the bot's host, CONTRACT §1.2)
must be the approved one, else the workspace is stopped and not offered.  ``env_sha`` always comes
from that clone, never from the webhook's head.

When the bot ends DevPod itself (its time limit), DevPod v0.6.15 dies at once and says nothing
(CONTRACT §9): the outcome says what was running and for how long, and ``devpod status`` is asked
where that left the workspace (:meth:`Operations.after_kill`).
"""

from __future__ import annotations

import dataclasses
import logging
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bot import devpod
from bot.environments import report
from bot.environments.journal import EnvRecord, Op
from bot.environments.oplog import OperationLogs
from bot.environments.states import FOUND, Event
from bot.prebuilds import plan as prebuild_plan
from bot.prebuilds.ledger import PrebuildLedger
from bot.prebuilds.starts import StartWatch
from bot.replicas.devpod_state import LOCAL, DevPodState, StateUnavailable

log = logging.getLogger(__name__)

BUILD_OPS = report.BUILD_OPS
CLONING = "Cloning repository"  # DevPod's phase while it clones (bot.devpod.phase_of)
#: What each conclusion reads as in the comment's "Last action" line.
VERDICTS = {"success": "succeeded", "failure": "failed", "timed_out": "timed out"}


@dataclasses.dataclass(frozen=True)
class Outcome:
    """What an operation came to."""

    conclusion: str  # the check run's: success, failure, timed_out or action_required
    event: Event | None  # what it means for the state (None: the state stays)
    verdict: str  # the "Last action" outcome: succeeded, failed, timed out, blocked, waiting for approval
    errors: tuple[str, ...] | None = None  # what the comment shows as gone wrong (None: leave it)
    head_sha: str | None = None  # the PR head, when the step found it moved
    env_sha: str | None = None  # a build: the commit DevPod's clone checked out (None: unknown)
    found: Event | None = None  # after the bot ended DevPod: what ``devpod status`` said (applied after ``event``)
    state_after: str | None = None  # that status ("Running", "missing", "unknown" ...), for the note
    wrong_commit: tuple[str, str | None, bool] | None = None  # (approved, checked out, stopped) when they differ


def judge(kind: str, result: devpod.RunResult, limit: float, *, extra_error: str | None = None,
          phase: str | None = None) -> Outcome:
    """What a DevPod run of ``kind`` means; ``extra_error`` is a problem the step found after it,
    ``phase`` what DevPod was last seen doing."""
    if result.timed_out:
        return Outcome("timed_out", Event.TIMED_OUT, VERDICTS["timed_out"],
                       tuple(result.errors()) + (report.killed_error(kind, phase, result.duration, limit),))
    if result.ok and kind == "status":  # what DevPod says the workspace is (Busy: the state stays)
        return Outcome("success", FOUND.get(devpod.parse_status(result.stdout).state.value), "succeeded")
    if result.ok:
        return Outcome("success", {"stop": Event.STOPPED, "delete": Event.DELETED}.get(kind, Event.BUILT),
                       "succeeded", ())
    if kind == "status" and devpod.workspace_missing(result.lines):
        return Outcome("success", Event.FOUND_MISSING, "succeeded")
    ended = (report.signal_error(result.signal),) if result.signal else ()  # DevPod said nothing (CONTRACT §9)
    errors = ((extra_error,) if extra_error else ()) or tuple(result.errors()) + ended \
        or (report.exit_code_error(result.exit_code),)
    failed = {"stop": Event.STOP_FAILED, "status": None}.get(kind, Event.FAILED)  # a failed status changes nothing
    return Outcome("failure", failed, "failed", errors)


class UnapprovedClone(Exception):
    """Raised from an ``up``'s output: DevPod's clone holds a commit nobody approved (it ends DevPod)."""

    def __init__(self, sha: str | None) -> None:
        super().__init__(f"DevPod cloned {sha}")
        self.sha = sha


class CloneWatch:
    """Wraps an untrusted build's ``on_line``: once DevPod is past cloning (the clone happens on the bot's
    host before the container exists, CONTRACT §1.2), its commit is read, and an unapproved one ends DevPod
    at once, before any of its code reaches a container or runs in a hook."""

    def __init__(self, ops: Operations, record: EnvRecord, kind: str,
                 on_line: Callable[[devpod.LogLine], None]) -> None:
        self.ops, self.record, self.kind, self.on_line = ops, record, kind, on_line
        self.state = "before"  # before -> cloning -> checked

    def __call__(self, line: devpod.LogLine) -> None:
        cloning = devpod.phase_of(line.message) == CLONING and not line.message.startswith("Successfully cloned")
        if self.state == "before" and cloning:
            self.state = "cloning"
        elif self.state == "cloning" and not cloning:
            self.state = "checked"
            if devpod.content_dir(self.ops.dp, self.record.ws_id).is_dir():  # else the check after ``up`` asks ssh
                sha = devpod.checked_out_commit(self.ops.dp, self.record.ws_id)
                if sha not in self.ops.approved(self.record, self.kind):
                    raise UnapprovedClone(sha)
        self.on_line(line)


class Operations:
    """DevPod on the bot's host: preparation, and one step per operation."""

    def __init__(self, dp: devpod.DevPodSettings, *, github_url: str, auth: Any = None,
                 logs_dir: Path | None = None, prebuilds: Any = None, state_dir: Any = None,
                 state: DevPodState = LOCAL) -> None:
        self.dp = dp
        self.prebuilds = prebuilds  # bot.settings.prebuilds.PrebuildSettings: up looks for prebuilt images
        self.ledger = PrebuildLedger(state_dir) if prebuilds is not None and state_dir is not None else None
        self.state = state  # DevPod's state of each workspace, restored before and saved after (bot.replicas)
        self.github_url = github_url
        self.auth = auth  # bot.github.auth.AppAuth: mints narrow installation tokens
        self.masker = devpod.Masker()
        self.logs = OperationLogs(time.time, logs_dir)  # the last operation's output of each workspace (/devenv logs)
        self.git_access = devpod.GitAccess.for_settings(dp)  # the clone token reaches git through it only
        self.prepared = False
        self.runs = 0  # DevPod processes started (metrics, tests)

    async def run(self, argv: list[str], timeout: float, **kwargs: Any) -> devpod.RunResult:
        self.runs += 1
        try:
            return await devpod.run(argv, settings=self.dp, timeout=timeout, masker=self.masker, **kwargs)
        except (FileNotFoundError, PermissionError) as exc:
            message = report.no_devpod_error(exc, argv[0])
            log.error(message)
            return devpod.RunResult(argv=argv, exit_code=127, timed_out=False, duration=0.0,
                                    lines=[devpod.LogLine(message=message, level="fatal", stream="stderr",
                                                          text=message)])
        finally:  # the run's git nonce dies with it; DEVPOD_HOME is scrubbed of clone tokens
            self.git_access.finish(kwargs.get("env_extra"))

    # ------------------------------------------------------------------ start-up
    def prepare_dirs(self) -> None:
        devpod.prepare_dirs(self.dp)

    async def prepare_devpod(self) -> None:
        """Idempotent: add the provider only if absent, else set its options; harden the context."""
        dp = self.dp
        listing = await self.run(devpod.provider_list_argv(dp), dp.provider_timeout)
        providers = devpod.parse_provider_list(listing.stdout) if listing.ok else set()
        options = devpod.provider_options(dp)
        if dp.provider in providers:
            result = listing
            if options:  # nothing configured means nothing to set
                result = await self.run(devpod.provider_set_options_argv(dp, options), dp.provider_timeout)
        else:
            result = await self.run(devpod.provider_add_argv(dp, options), dp.provider_timeout)
        if not result.ok:
            raise RuntimeError("DevPod provider set-up failed: " + "; ".join(result.errors()))
        hardened = await self.run(devpod.context_harden_argv(dp), dp.provider_timeout)
        if not hardened.ok:
            raise RuntimeError("DevPod context hardening failed: " + "; ".join(hardened.errors()))
        self.prepared = True

    async def problem(self) -> str | None:
        """Why DevPod cannot work now (missing, another version, provider not prepared), or None.

        Preparing is retried here, so fixing the cause (installing DevPod, a reachable cluster) makes
        the bot ready without a restart.
        """
        dp = self.dp
        result = await self.run(devpod.version_argv(dp), dp.provider_timeout)
        if not result.ok:
            why = "; ".join(result.errors()) or f"exit status {result.exit_code}"
            return (f"DevPod could not be run as {dp.binary!r} ({why}): install DevPod {devpod.DEVPOD_VERSION} "
                    "(docs/operations.md) or set DEVPOD_BIN")
        found = result.stdout.strip()
        if found.lstrip("v") != devpod.DEVPOD_VERSION.lstrip("v"):
            return (f"{dp.binary} is DevPod {found or 'of an unknown version'}; devenv-bot drives "
                    f"{devpod.DEVPOD_VERSION} only (docs/operations.md)")
        if not self.prepared:
            try:
                await self.prepare_devpod()
            except Exception as exc:  # any failure is a reason to show on /readyz
                return f"DevPod's {dp.provider} provider could not be prepared: {exc}"
        return None

    # ------------------------------------------------------------------ tokens
    async def mint(self, installation_id: int, repo: str, contents: str) -> str | None:
        """A token for ``contents`` (read or write) on this one repository; None without app credentials."""
        if self.auth is None:
            return None
        answer = await self.auth.mint(installation_id, {"repositories": [repo], "permissions": {"contents": contents}})
        return str(answer["token"])

    async def _git_credentials(self, record: EnvRecord) -> dict[str, str] | None:
        """For private repositories, a read-only token narrowed to this repo, for one DevPod process."""
        if not record.private:
            return None
        token = await self.mint(record.installation_id, record.repo, "read")
        if token is None:
            return None
        self.masker.add(token)
        return await self.git_access.grant(token)

    # ------------------------------------------------------------------ steps
    def limit(self, kind: str) -> float:
        return {"stop": self.dp.stop_timeout, "delete": self.dp.delete_timeout,
                "status": self.dp.status_timeout}.get(kind, self.dp.up_timeout)

    async def checkout_state(self, ws_id: str) -> tuple[bool, str | None]:
        """(uncommitted changes?, the commit checked out) inside the workspace; unknown counts as
        clean and None. Runs one fixed command over ``devpod ssh``: nothing user-controlled in it."""
        command = devpod.wrap_with_exit_marker(
            'echo "__DEVENV_HEAD=$(git rev-parse --verify -q HEAD 2>/dev/null)"; '
            "git status --porcelain --untracked-files=no 2>/dev/null")
        result = await self.run(devpod.ssh_command_argv(self.dp, ws_id, command), self.dp.ssh_timeout)
        code, out = devpod.parse_exit_marker(result.stdout)
        head, status = None, []
        for line in out.splitlines():
            if line.startswith("__DEVENV_HEAD="):
                head = line.removeprefix("__DEVENV_HEAD=").strip() or None
            elif line.strip():
                status.append(line)
        if head is not None and not re.fullmatch(r"[0-9a-f]{40}", head):
            head = None
        return code == 0 and bool(status), head

    async def before_sync(self, record: EnvRecord, op: Op) -> Outcome | None:
        """A sync ends before DevPod runs when the new head is already checked out (pushed from inside
        the environment, by someone working there or the agent: rebuilding would throw the work away)
        or when uncommitted changes would be lost.  None: go on."""
        try:
            async with self.state.using(record.ws_id, expected=record.env_sha is not None, changes=False):
                blocked, checked_out = await self.checkout_state(record.ws_id)
        except StateUnavailable:
            return None  # the step says why it cannot run
        if checked_out == op.head_sha:
            return Outcome("success", Event.BUILT, "succeeded", (), env_sha=checked_out)
        if blocked:
            return Outcome("action_required", Event.SYNC_BLOCKED, "blocked")
        return None

    async def step(self, record: EnvRecord, op: Op, on_line: Callable[[devpod.LogLine], None]) -> Outcome:
        """Run ``op``'s DevPod command and judge it; a build is then verified, a run the bot ended is followed up.

        Its output is kept for ``/devenv logs`` (on disk too, at its end), except a status's: a read.
        Around it, DevPod's state of the workspace is restored and saved (:attr:`state`); a workspace built
        before that has no state to restore is not run at all (DevPod would make it anew with a new volume)."""
        watched = on_line if op.kind == "status" else self.logs.watch(record.ws_id, op.kind, on_line)
        try:
            async with self.state.using(record.ws_id, expected=record.env_sha is not None,
                                        changes=op.kind != "status"):
                return await self._step(record, op, watched)
        except StateUnavailable as exc:
            log.error("%s: %s", record.ws_id, exc)
            failed = {"stop": Event.STOP_FAILED, "status": None}.get(op.kind, Event.FAILED)
            return Outcome("failure", failed, VERDICTS["failure"], (str(exc),))
        finally:
            if op.kind != "status":
                self.logs.save(record.ws_id)

    async def _step(self, record: EnvRecord, op: Op, on_line: Callable[[devpod.LogLine], None]) -> Outcome:
        dp, kind = self.dp, op.kind
        extra_error = None
        if kind in BUILD_OPS:
            on_line = watch = StartWatch(on_line)
            try:
                result = await self._up(record, kind, on_line)
            except UnapprovedClone as exc:  # DevPod was stopped right after cloning, before the container
                return await self.refuse_clone(record, exc.sha)
        elif kind == "stop":
            result = await self.run(devpod.stop_argv(dp, record.ws_id), dp.stop_timeout, on_line=on_line)
        elif kind == "delete":
            result = await self.run(devpod.delete_argv(dp, record.ws_id), dp.delete_timeout, on_line=on_line)
            if result.ok and await self._still_listed(record.ws_id):
                # Some DevPod versions exit 0 on a failed delete: confirm it is really gone.
                result = dataclasses.replace(result, exit_code=1)
                extra_error = report.still_listed_error()
            elif result.ok:
                devpod.remove_agent_leftovers(dp, record.ws_id)
                await self.state.forget(record.ws_id)
        else:  # status
            result = await self.run(devpod.status_argv(dp, record.ws_id), dp.status_timeout)
        outcome = judge(kind, result, self.limit(kind), extra_error=extra_error, phase=record.phase)
        if (result.timed_out or result.signal) and kind != "status":  # ended mid-way: where did it leave things?
            return await self.after_kill(record, kind, outcome)
        if kind in BUILD_OPS and outcome.event is Event.BUILT:
            record.start = watch.note(self.ledger, f"{record.owner}/{record.repo}", record.base_ref) \
                if self._prebuild_repositories(record) else None
            return await self.verify(record, op, outcome)
        return outcome

    def _prebuild_repositories(self, record: EnvRecord) -> tuple[str, ...]:
        if self.prebuilds is None or not record.prebuild:
            return ()
        return (prebuild_plan.image_repository(self.prebuilds.repository, record.owner, record.repo),)

    async def _up(self, record: EnvRecord, kind: str, on_line: Callable[[devpod.LogLine], None]) -> devpod.RunResult:
        if record.trusted is False:
            on_line = CloneWatch(self, record, kind, on_line)
        # An untrusted PR's clone holding a commit nobody approved is cloned again, never started.
        reset = kind in ("reset", "sync") or self._holds_unapproved(record, kind)
        argv = devpod.up_argv(
            self.dp, record.ws_id, devpod.pr_source(self.github_url, record.owner, record.repo, record.number),
            recreate=(kind == "recreate"), reset=reset, ide=record.ide, devcontainer_path=record.devcontainer_path,
            provider_options={"RESOURCES": record.resources} if record.resources else None,
            labels={"repo": f"{record.owner}.{record.repo}", "pr": str(record.number)},
            prebuild_repositories=self._prebuild_repositories(record), clone_strategy=record.clone_strategy)
        return await self.run(argv, self.dp.up_timeout, env_extra=await self._git_credentials(record),
                              on_line=on_line)

    # ------------------------------------------------------------------ what was built
    @staticmethod
    def approved(record: EnvRecord, kind: str) -> set[str | None]:
        """The commits an untrusted PR's workspace may hold after ``kind``: the approved one, and for an
        operation that does not clone again (``up`` of an existing workspace, ``recreate``) the commit
        it was verified at before."""
        allowed: set[str | None] = {record.approved_sha} - {None}
        if kind in ("up", "recreate") and record.env_sha:
            allowed.add(record.env_sha)
        return allowed

    def _holds_unapproved(self, record: EnvRecord, kind: str) -> bool:
        if record.trusted is not False or kind not in ("up", "recreate"):
            return False
        held = devpod.checked_out_commit(self.dp, record.ws_id)
        if held is None and self.state is not LOCAL and not devpod.content_dir(self.dp, record.ws_id).is_dir():
            return True  # restored from the cluster without DevPod's clone: what it holds is unknown here
        return held is not None and held not in self.approved(record, kind)

    async def cloned_commit(self, ws_id: str) -> str | None:
        """The commit the workspace's clone is at: read on the bot's host where the Kubernetes provider
        clones (CONTRACT §1.2), else asked of the workspace over ``devpod ssh``; None if unknown."""
        if devpod.content_dir(self.dp, ws_id).is_dir():
            return devpod.checked_out_commit(self.dp, ws_id)
        return (await self.checkout_state(ws_id))[1]

    async def verify(self, record: EnvRecord, op: Op, built: Outcome) -> Outcome:
        """A successful build: take ``env_sha`` from what DevPod cloned, and for untrusted code make sure it
        is an approved commit, else stop the workspace and fail (the PR moved between check and clone)."""
        sha = await self.cloned_commit(record.ws_id)
        if record.trusted is not False:
            if sha is None:
                log.warning("%s: the checked-out commit could not be read; assuming the PR head", record.ws_id)
            return dataclasses.replace(built, env_sha=sha or op.head_sha)
        if sha is not None and sha in self.approved(record, op.kind):
            return dataclasses.replace(built, env_sha=sha)
        return await self.refuse_clone(record, sha)

    async def refuse_clone(self, record: EnvRecord, sha: str | None) -> Outcome:
        """DevPod checked out ``sha``, not an approved commit: stop the workspace and fail, asking for approval."""
        expected = record.approved_sha or ""
        log.warning("%s: DevPod checked out %s, not the approved %s: stopping it", record.ws_id, sha, expected)
        stopped = await self.run(devpod.stop_argv(self.dp, record.ws_id), self.dp.stop_timeout)
        errors = (report.wrong_commit_error(expected, sha),) + (() if stopped.ok else tuple(stopped.errors()))
        return Outcome("failure", Event.FAILED, VERDICTS["failure"], errors,
                       found=Event.FOUND_STOPPED if stopped.ok else None, wrong_commit=(expected, sha, stopped.ok))

    async def after_kill(self, record: EnvRecord, kind: str, outcome: Outcome) -> Outcome:
        """DevPod was ended by a signal (the bot's time limit, or someone else's): it said nothing and may have
        left a container running half set up, so ``devpod status`` tells where the workspace is; the state
        follows it."""
        result = await self.run(devpod.status_argv(self.dp, record.ws_id), self.dp.status_timeout)
        if result.ok:
            state = devpod.parse_status(result.stdout).state.value
        else:
            state = "missing" if devpod.workspace_missing(result.lines) else "unknown"
        found = Event.FOUND_MISSING if state == "missing" else FOUND.get(state)
        if state == "Running" and kind in BUILD_OPS and record.trusted is False \
                and await self.cloned_commit(record.ws_id) not in self.approved(record, kind):
            # Half-made from a commit nobody approved: it is not left running.
            stopped = await self.run(devpod.stop_argv(self.dp, record.ws_id), self.dp.stop_timeout)
            if stopped.ok:
                state, found = "Stopped", Event.FOUND_STOPPED
        log.info("%s: after %s was ended by a signal, DevPod says %s", record.ws_id, kind, state)
        return dataclasses.replace(outcome, found=found, state_after=state)

    async def _still_listed(self, ws_id: str) -> bool:
        listing = await self.run(devpod.list_argv(self.dp), self.dp.status_timeout)
        return listing.ok and any(w.get("id") == ws_id for w in devpod.parse_list(listing.stdout))
