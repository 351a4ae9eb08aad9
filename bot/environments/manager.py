"""Per-PR environments: one DevPod workspace per pull request, kept in step with it.

Design, in the order a request flows through it:

* :meth:`EnvironmentManager.request` records what was asked (an :class:`Op`)
  and returns at once.  Each workspace has one *slot*: a queue of pending
  operations and at most one running.  Requests coalesce: the same kind
  pending twice becomes one (the newest head wins), so ten quick pushes cause
  at most two DevPod runs; ``delete`` cancels whatever runs and drops what
  waits.
* A global :class:`FairLimiter` caps concurrent DevPod processes
  (``DEVENV_MAX_CONCURRENT_OPS``); waiters are served first come, first
  served and see their position ("queued, 3 ahead").
* Progress is *published*, not written: the check run ``devenv`` and the
  sticky comment are re-rendered from the record by :mod:`bot.publish`, so a
  burst of phase changes costs one GitHub write.
* Every change is journalled (:mod:`bot.journal`); on start-up unfinished
  operations are resumed, so no check run stays ``in_progress`` forever.

Syncing a push: DevPod never changes an existing workspace's source, and the
workspace must never hold a credential to fetch with, so the bot first asks
the workspace whether it has uncommitted changes (``git status`` over
``devpod ssh``); if it does, syncing pauses and the comment says how to go on;
otherwise ``devpod up --reset`` re-clones the PR head on the bot's host and
re-streams it (the container is rebuilt, the volume kept).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import json
import logging
import re
import time
from collections.abc import Callable
from typing import Any

from bot.core import logs
from bot.devpod import driver as devpod
from bot.environments.journal import Action, EnvRecord, Journal, Op
from bot.github.publish import Publisher
from bot.github.pulls import PullRef, PullRequestAPI, check_output
from bot.text.templating import render

log = logging.getLogger(__name__)

CHECK_NAME = "devenv"
BUILD_OPS = ("up", "recreate", "reset", "sync")
VERB_TITLES = {
    "up": "Creating the environment", "recreate": "Recreating the environment",
    "reset": "Resetting the environment", "sync": "Updating the environment to the new head",
    "stop": "Stopping the environment", "delete": "Deleting the environment",
    "status": "Checking the environment",
}


#: Seconds the start-up sweep of orphaned browser links may take before it is left for the next start.
ORPHAN_SWEEP_TIMEOUT = 60.0


def exposure_reason(exc: BaseException, *, detail: bool = True) -> str:
    """A short, human reason for a failed Kubernetes call (no tracebacks). ``detail=False`` leaves out
    the API server's message (it names service accounts and namespaces): for the public PR comment."""
    from bot.cluster.cloudflare import CloudflareError

    if isinstance(exc, CloudflareError):
        return str(exc) if detail else "the Cloudflare API answered: " + "; ".join(exc.messages)
    status = getattr(exc, "status", None)
    if isinstance(status, int) and status:
        message = ""
        with contextlib.suppress(ValueError, AttributeError):
            message = str(json.loads(getattr(exc, "body", None) or "{}").get("message") or "")
        reason = getattr(exc, "reason", None) or ""
        text = f"the Kubernetes API answered {status} {reason}".rstrip()
        return f"{text} ({message[:200]})" if message and detail else text
    if isinstance(exc, asyncio.TimeoutError):
        return "the Kubernetes API did not answer in time"
    text = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ""
    return f"{exc.__class__.__name__}: {text}" if text else exc.__class__.__name__


def _ids(comment_id: int | None) -> list[int]:
    return [] if comment_id is None else [comment_id]


class FairLimiter:
    """A FIFO semaphore that tells each waiter how many are ahead of it."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.running = 0
        self._waiters: collections.deque[tuple[asyncio.Future[None], Callable[[int], None]]] = collections.deque()

    async def acquire(self, on_position: Callable[[int], None]) -> None:
        if self.running < self.limit and not self._waiters:
            self.running += 1
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append((fut, on_position))
        on_position(len(self._waiters) - 1)  # how many wait before it (0: next in line)
        try:
            await fut
        except asyncio.CancelledError:
            if fut.done() and not fut.cancelled():
                self.release()  # handed the slot just as we were cancelled: pass it on
            else:
                self._remove(fut)
            raise

    def _remove(self, fut: asyncio.Future[None]) -> None:
        self._waiters = collections.deque((f, cb) for f, cb in self._waiters if f is not fut)
        self._announce()

    def release(self) -> None:
        self.running -= 1
        while self._waiters and self.running < self.limit:
            fut, _ = self._waiters.popleft()
            if not fut.done():
                self.running += 1
                fut.set_result(None)
        self._announce()

    def _announce(self) -> None:
        for i, (_, cb) in enumerate(self._waiters):
            cb(i)


@dataclasses.dataclass
class _Slot:
    pending: collections.deque[Op] = dataclasses.field(default_factory=collections.deque)
    running: Op | None = None
    task: asyncio.Task[None] | None = None  # the worker draining ``pending``
    op_task: asyncio.Task[Any] | None = None  # the DevPod run of ``running``


@dataclasses.dataclass(frozen=True)
class PullInfo:
    """What the manager needs to know about a PR, taken from a webhook payload."""

    ref: PullRef
    head_sha: str
    head_ref: str = ""
    title: str = ""
    author: str = ""
    fork: bool = False
    private: bool = False
    base_sha: str = ""

    @classmethod
    def from_payload(cls, installation_id: int, pr: dict[str, Any], repository: dict[str, Any]) -> PullInfo:
        head_repo = (pr.get("head") or {}).get("repo") or {}
        return cls(
            ref=PullRef(installation_id, repository["owner"]["login"], repository["name"], pr["number"]),
            head_sha=pr["head"]["sha"],
            head_ref=pr["head"].get("ref", ""),
            title=pr.get("title") or "",
            author=(pr.get("user") or {}).get("login", ""),
            fork=head_repo.get("full_name") != repository["full_name"],
            private=bool(repository.get("private")),
            base_sha=(pr.get("base") or {}).get("sha", ""),
        )


class EnvironmentManager:
    def __init__(self, *, settings: Any, github: Any, auth: Any, dp: devpod.DevPodSettings,
                 max_concurrent: int = 4, publish_interval: float = 3.0, sync_debounce: float = 5.0,
                 clock=time.time) -> None:
        self.settings = settings
        self.github = github
        self.auth = auth
        self.dp = dp
        self.clock = clock
        self.journal = Journal(settings.state_dir)
        self.records: dict[str, EnvRecord] = {}
        self.slots: dict[str, _Slot] = {}
        self.limiter = FairLimiter(max_concurrent)
        self.publisher = Publisher(min_interval=publish_interval)
        self.masker = devpod.Masker()
        self.askpass: Any = None
        self.prepared = False
        self.shutting_down = False
        self.exposure: Any = None  # bot.exposure.Exposure, set by the Bot when links are configured
        #: bot.cloudflare.CloudflareTunnelRoutes in the Cloudflare Tunnel API mode (docs/cloudflare.md):
        #: the tunnel's rules and DNS records route the preview hosts; ``exposure`` then creates the Service only.
        self.tunnel: Any = None
        self.devpod_runs = 0
        self.sync_debounce = sync_debounce

    # ------------------------------------------------------------------ start-up
    async def start(self) -> None:
        devpod.prepare_dirs(self.dp)
        self.askpass = devpod.write_askpass(self.dp.home)
        for record in self.journal.load_all():
            self.records[record.ws_id] = record
        try:
            await self.prepare_devpod()
        except Exception:
            log.exception("preparing DevPod failed; environments will fail until it is fixed")
        await self._remove_orphan_links()
        for record in list(self.records.values()):
            unfinished = ([record.op] if record.op is not None else []) + list(record.pending)
            record.op, record.pending = None, []
            for op in unfinished:
                op.resumed = True
                log.info("resuming %s of %s after a restart", op.kind, record.ws_id)
                self._enqueue(record, op)

    async def _remove_orphan_links(self) -> None:
        """Delete the cluster objects of workspaces the bot no longer knows (deleted while it was down).

        Runs before any webhook is handled, so a workspace created meanwhile cannot be mistaken
        for an orphan.  A failure only means the orphans stay until the next start."""
        if self.exposure is None:
            return
        live = [ws_id for ws_id, r in self.records.items() if r.state != "deleted"]
        for what, owner in (("browser links", self.exposure), ("tunnel routes", self.tunnel)):
            if owner is None:
                continue
            try:
                gone = await asyncio.wait_for(owner.remove_orphans(live), ORPHAN_SWEEP_TIMEOUT)
            except Exception as exc:
                log.warning("could not remove the %s of deleted environments: %s", what, exposure_reason(exc))
            else:
                if gone:
                    log.info("removed the %s of %d deleted environment(s): %s", what, len(gone), sorted(gone))

    async def _expose(self, record: EnvRecord) -> None:
        """Create or update the browser links of a running environment; a failure is told, not fatal."""
        if self.exposure is None:
            return
        from bot.cluster.exposure import ExposureError, exposed_workspace

        ports: dict[str, int] = {}
        refused: list[str] = []
        for p in record.ports:  # one port the router cannot serve must not cost the others their links
            try:
                exposed_workspace(self.exposure.settings, record.ws_id, None, {**ports, p["name"]: p["port"]})
            except ExposureError as exc:
                refused.append(str(exc))
            else:
                ports[p["name"]] = p["port"]
        folder = self._workspace_folder(record.ws_id)
        try:
            links = await self.exposure.apply(
                record.ws_id, {"repo": f"{record.owner}.{record.repo}", "pr": str(record.number)},
                ports=ports, folder=folder)
            if self.tunnel is not None:  # Cloudflare Tunnel API mode: the Service exists, now route to it
                from bot.cluster.cloudflare import tunnel_routes

                ws = exposed_workspace(self.exposure.settings, record.ws_id, None, ports, folder=folder)
                await self.tunnel.apply(record.ws_id, tunnel_routes(self.exposure.settings, self.tunnel.settings, ws))
        except Exception as exc:
            log.warning("browser links of %s could not be created: %s", record.ws_id, exposure_reason(exc))
            # In the public comment: the status, or the bot's own manifest error, never the API's text
            # (Cloudflare's error messages are generic and name no account or zone, so they are shown).
            from bot.cluster.cloudflare import CloudflareError

            reason = (str(exc) if isinstance(exc, ExposureError)
                      else exposure_reason(exc, detail=False) if getattr(exc, "status", None)
                      or isinstance(exc, (asyncio.TimeoutError, CloudflareError))
                      else f"{exc.__class__.__name__} (see the bot's log)")
            record.links = []
            record.note = (f"Browser links could not be created: {reason}. The environment works over SSH "
                           "(see below); the links are tried again on the next push or `"
                           f"{self.settings.command_prefix} up`.")
            return
        declared = {p["name"]: p.get("permission") for p in record.ports}
        record.links = [{"name": link.name, "url": link.url,
                         "permission": declared.get(link.name) or link.permission} for link in links]
        if refused:
            log.warning("ports of %s got no link: %s", record.ws_id, "; ".join(refused))
            record.note = "Some ports got no browser link: " + "; ".join(refused) + "."

    async def _unexpose(self, record: EnvRecord) -> None:
        record.links = []
        if self.exposure is None:
            return
        if self.tunnel is not None:  # the routes first: no host may point at a Service that is gone
            try:
                await self.tunnel.remove(record.ws_id)
            except Exception as exc:  # the next start sweeps them as orphans
                log.warning("tunnel routes of %s could not be removed: %s", record.ws_id, exposure_reason(exc))
        try:
            await self.exposure.remove(record.ws_id)
        except Exception as exc:  # the next start sweeps them as orphans
            log.warning("browser links of %s could not be removed: %s", record.ws_id, exposure_reason(exc))

    def _workspace_folder(self, ws_id: str) -> str | None:
        """Where DevPod put the sources in the container (``workspace_result.json``), if it says."""
        path = self.dp.home / "contexts" / self.dp.context / "workspaces" / ws_id / "workspace_result.json"
        try:
            folder = json.loads(path.read_text())["SubstitutionContext"]["ContainerWorkspaceFolder"]
        except (OSError, ValueError, KeyError, TypeError):
            return None
        return folder if isinstance(folder, str) and folder.startswith("/") else None

    async def prepare_devpod(self) -> None:
        """Idempotent: add the provider only if absent, else set its options; harden the context."""
        listing = await self._run(devpod.provider_list_argv(self.dp), self.dp.provider_timeout)
        providers = devpod.parse_provider_list(listing.stdout) if listing.ok else set()
        options = devpod.provider_options(self.dp)
        if self.dp.provider in providers:
            result = listing
            if options:  # nothing configured means nothing to set
                result = await self._run(devpod.provider_set_options_argv(self.dp, options),
                                         self.dp.provider_timeout)
        else:
            result = await self._run(devpod.provider_add_argv(self.dp, options), self.dp.provider_timeout)
        if not result.ok:
            raise RuntimeError("DevPod provider set-up failed: " + "; ".join(result.errors()))
        hardened = await self._run(devpod.context_harden_argv(self.dp), self.dp.provider_timeout)
        if not hardened.ok:
            raise RuntimeError("DevPod context hardening failed: " + "; ".join(hardened.errors()))
        self.prepared = True

    async def idle(self) -> None:
        """Wait until no operation runs or waits and every publish is written (tests, `receive`)."""
        while True:
            tasks = [s.task for s in self.slots.values() if s.task is not None and not s.task.done()]
            tasks += self.publisher.tasks()
            if not tasks:
                return
            await asyncio.gather(*tasks, return_exceptions=True)

    async def drain(self, grace: float) -> None:
        """On shutdown: let running operations finish within ``grace``; the rest stay journalled.

        Whatever is still running after the grace period is stopped without being
        concluded: its check run says the bot is restarting, and the journal lets
        the next start resume it.
        """
        workers = [s.task for s in self.slots.values() if s.task is not None and not s.task.done()]
        if workers:
            log.info("waiting up to %.0fs for %d environment operation(s)", grace, len(workers))
            _, pending = await asyncio.wait(workers, timeout=grace)
            if pending:
                self.shutting_down = True
                for slot in self.slots.values():
                    for task in (slot.op_task, slot.task):
                        if task is not None and not task.done():
                            task.cancel()
                await asyncio.gather(*pending, return_exceptions=True)
        await self.publisher.close()

    # ------------------------------------------------------------------ requests
    def port_permission(self, ws_id: str, port: str) -> str | None:
        """The permission ``.github/devenv.yml`` asks for a preview port (None: the default)."""
        record = self.records.get(ws_id)
        for item in (record.ports if record is not None else []):
            if item.get("name") == port:
                return item.get("permission")
        return None

    def find(self, info: PullInfo) -> EnvRecord | None:
        """The PR's record if the bot tracks it (never creates one)."""
        return self.records.get(devpod.workspace_id(info.ref.owner, info.ref.repo, info.ref.number))

    def record_for(self, info: PullInfo) -> EnvRecord:
        ws_id = devpod.workspace_id(info.ref.owner, info.ref.repo, info.ref.number)
        record = self.records.get(ws_id)
        if record is None:
            record = EnvRecord(ws_id=ws_id, installation_id=info.ref.installation_id, owner=info.ref.owner,
                               repo=info.ref.repo, number=info.ref.number, head_sha=info.head_sha)
            self.records[ws_id] = record
        record.installation_id = info.ref.installation_id
        record.head_sha = info.head_sha
        record.head_ref, record.title, record.author = info.head_ref, info.title, info.author
        record.fork, record.private = info.fork, info.private
        return record

    def request(self, info: PullInfo, kind: str, *, requested_by: str, comment_id: int | None = None,
                approve: bool = False) -> EnvRecord:
        """Ask for an operation on the PR's environment; returns at once.

        ``approve``: someone with write access vouches for the PR's current head, so an
        untrusted PR may be built at exactly that commit.
        """
        record = self.record_for(info)
        if approve:
            record.approved_sha, record.approved_by, record.note = info.head_sha, requested_by, None
        op = Op(kind=kind, head_sha=info.head_sha, requested_by=requested_by, requested_at=self.clock(),
                comment_id=comment_id)
        record.last_action = Action(verb=kind, by=requested_by, at=op.requested_at)
        self._enqueue(record, op)
        return record

    def configure(self, info: PullInfo, repo_settings: Any, problems: list[str]) -> EnvRecord:
        """Apply the repository's ``.github/devenv.yml`` (read from the base branch) to this PR."""
        from bot.settings.repo import render_problems

        record = self.record_for(info)
        record.ide = repo_settings.ide
        record.devcontainer_path = repo_settings.devcontainer_path
        record.resources = repo_settings.resources
        record.idle_stop, record.delete_after = repo_settings.idle_stop, repo_settings.delete_after
        record.ports = [{"name": p.name, "port": p.port, "permission": p.permission} for p in repo_settings.ports]
        note = render_problems(problems, base_sha=info.base_sha or None) if problems else None
        changed = note != record.settings_note
        record.settings_note = note
        self._save(record)
        if changed:
            self._publish_comment(record, urgent=True)
        return record

    def set_trust(self, info: PullInfo, trusted: bool) -> EnvRecord:
        record = self.record_for(info)
        record.trusted = trusted
        self._save(record)
        return record

    def refresh(self, info: PullInfo) -> None:
        """Re-render the sticky comment from what is known (e.g. a new head on a stopped environment)."""
        record = self.record_for(info)
        self._save(record)
        self._publish_comment(record)

    def explain(self, info: PullInfo, note: str) -> None:
        """Show a note in the sticky comment without running anything (e.g. fork PRs)."""
        record = self.record_for(info)
        record.note = note
        self._save(record)
        self._publish_comment(record, urgent=True)

    def _enqueue(self, record: EnvRecord, op: Op) -> None:
        slot = self.slots.setdefault(record.ws_id, _Slot())
        if op.kind == "delete":
            dropped = list(slot.pending)
            slot.pending.clear()
            for old in dropped:
                self._conclude_dropped(record, old, "superseded by a delete")
            if slot.running is not None and slot.running.kind != "delete" and slot.op_task is not None:
                slot.op_task.cancel()  # the delete cancels an in-flight up
        for i, waiting in enumerate(slot.pending):
            if waiting.kind == op.kind:
                # The same request is already waiting: keep one, with the newest head; every
                # command comment that asked for it still gets its reaction.
                op.check_run_id = op.check_run_id or waiting.check_run_id
                op.also_notify = [*waiting.also_notify, *_ids(waiting.comment_id), *op.also_notify]
                slot.pending[i] = op
                break
        else:
            running = slot.running
            if running is not None and running.kind == op.kind and op.kind != "sync" \
                    and running.head_sha == op.head_sha:
                log.info("%s of %s is already running; not queueing it twice", op.kind, record.ws_id)
                running.also_notify.extend(_ids(op.comment_id))
                return
            slot.pending.append(op)
        if record.state in ("none", "deleted", "failed", "stopped") and op.kind in BUILD_OPS:
            record.state = "queued"
        record.pending = list(slot.pending)
        self._save(record)
        if slot.task is None or slot.task.done():
            slot.task = asyncio.get_running_loop().create_task(self._worker(record.ws_id),
                                                               name=f"env-{record.ws_id}")

    def _conclude_dropped(self, record: EnvRecord, op: Op, why: str) -> None:
        self._react(record, op, "confused")
        if op.check_run_id is not None:
            self._publish_check(record, op, status="completed", conclusion="cancelled",
                                title=f"Cancelled: {why}", urgent=True)

    # ------------------------------------------------------------------ the worker
    async def _worker(self, ws_id: str) -> None:
        slot = self.slots[ws_id]
        while slot.pending:
            head = slot.pending[0]
            if head.kind == "sync" and not head.resumed:
                # Pushes often come in bursts: wait for a quiet moment so only the newest head is built.
                quiet = head.requested_at + self.sync_debounce - self.clock()
                if quiet > 0:
                    await asyncio.sleep(quiet)
                    continue  # a newer push may have replaced it meanwhile
            op = slot.pending.popleft()
            record = self.records[ws_id]
            slot.running = op
            record.op = op
            record.pending = list(slot.pending)
            self._save(record)
            slot.op_task = asyncio.get_running_loop().create_task(self._execute(record, op),
                                                                  name=f"op-{op.kind}-{ws_id}")
            try:
                await asyncio.shield(slot.op_task)
            except asyncio.CancelledError:
                if not slot.op_task.done():  # the worker itself is being cancelled (shutdown)
                    slot.op_task.cancel()
                    await asyncio.gather(slot.op_task, return_exceptions=True)
                    raise
            except Exception:
                log.exception("operation %s of %s failed unexpectedly", op.kind, ws_id)
            finally:
                slot.running = None
                slot.op_task = None
        if not slot.pending:
            self.slots.pop(ws_id, None)

    async def _execute(self, record: EnvRecord, op: Op) -> None:
        with logs.context(repo=record.full_name, pr=record.number):
            try:
                await self._execute_op(record, op)
            except asyncio.CancelledError:
                if self.shutting_down:
                    # Stopped by a shutdown: the journal keeps the op, the next start resumes it.
                    if op.check_run_id is not None:
                        self._publish_check(record, op, status="in_progress",
                                            title="Paused: devenv-bot is restarting and will resume this",
                                            urgent=True)
                    raise
                # Cancelled by a delete: say so, never leave it in progress.
                record.phase = None
                record.op = None
                if op.kind in BUILD_OPS:
                    record.state = "deleting" if self._delete_pending(record) else "failed"
                self._finish_action(record, op, "cancelled")
                self._save(record)
                if op.check_run_id is not None:
                    self._publish_check(record, op, status="completed", conclusion="cancelled",
                                        title="Cancelled", summary="This operation was cancelled "
                                        "(the pull request was closed or a delete was asked for).", urgent=True)
                self._publish_comment(record, urgent=True)
                raise
            except Exception as exc:
                log.exception("%s of %s failed", op.kind, record.ws_id)
                record.phase, record.op = None, None
                record.state = "failed"
                record.errors = [f"devenv-bot hit an internal error ({exc.__class__.__name__}); "
                                 "this is a bug, the log has the details"]
                self._finish_action(record, op, "failed")
                self._save(record)
                if op.check_run_id is not None:
                    self._publish_check(record, op, status="completed", conclusion="failure",
                                        title="Internal error", urgent=True)
                self._publish_comment(record, urgent=True)

    def _delete_pending(self, record: EnvRecord) -> bool:
        slot = self.slots.get(record.ws_id)
        return bool(slot and any(o.kind == "delete" for o in slot.pending))

    async def _execute_op(self, record: EnvRecord, op: Op) -> None:
        pr = self.pr_api(record)
        if op.kind in BUILD_OPS and op.check_run_id is None:
            # Queued first, even when a DevPod slot is free: the run's history then always reads
            # queued → in progress → conclusion (one write more, still within the budget).
            op.check_run_id = await pr.create_check(
                name=CHECK_NAME, head_sha=op.head_sha, external_id=record.ws_id, status="queued",
                output=check_output(f"{VERB_TITLES[op.kind]}: queued", self._summary(record, op)))
            record.check_run_id, record.check_sha = op.check_run_id, op.head_sha
            self.publisher.note_write(("check", record.ws_id, op.check_run_id))
            self._save(record)
        elif op.kind in BUILD_OPS and op.resumed:
            self._publish_check(record, op, status="in_progress", title=self._title(op))
        record.errors, record.note = [], None

        def on_position(ahead: int) -> None:
            record.queued_ahead = ahead
            self._publish_check(record, op, status="queued",
                                title=f"Queued, {ahead} ahead" if ahead else "Queued, next in line")
            self._publish_comment(record)

        await self.limiter.acquire(on_position)
        try:
            record.queued_ahead = None
            await self._run_op(record, op)
        finally:
            self.limiter.release()

    async def _run_op(self, record: EnvRecord, op: Op) -> None:
        dp = self.dp
        kind = op.kind
        record.state = {"up": "creating", "recreate": "creating", "reset": "creating", "sync": "updating",
                        "stop": "stopping", "delete": "deleting", "status": record.state}[kind]
        record.phase = "Starting DevPod"
        self._save(record)
        if kind in BUILD_OPS:
            self._publish_check(record, op, status="in_progress", title=self._title(op), urgent=True)
        # The check run already says it started; the comment follows after a moment, so a quick
        # operation costs one comment edit (its outcome) instead of two.
        self._publish_comment(record, delay=self.publisher.min_interval)

        def on_line(line: devpod.LogLine) -> None:
            phase = devpod.phase_of(line.message)
            if phase and phase != record.phase:
                record.phase = phase
                if kind in BUILD_OPS:  # the comment shows states; phases live in the check run
                    self._publish_check(record, op, status="in_progress", title=f"{self._title(op)}: {phase}")

        if kind == "sync":
            blocked, checked_out = await self._checkout_state(record)
            if checked_out == op.head_sha:
                # The new head was pushed from inside the environment (by someone working there, or
                # the agent): it is already checked out, and rebuilding would throw the work away.
                await self._conclude(record, op, devpod.RunResult(argv=[], exit_code=0, lines=[],
                                                                  timed_out=False, duration=0.0))
                return
            if blocked:
                record.state, record.phase, record.op = "running", None, None
                record.note = ("The environment has uncommitted changes, so it was **not** moved to the new "
                               "head. Commit or discard them inside the environment, or comment "
                               f"`{self.settings.command_prefix} reset` to throw them away and start from the "
                               "PR head.")
                self._finish_action(record, op, "blocked")
                self._save(record)
                self._publish_check(record, op, status="completed", conclusion="action_required",
                                    title="Not updated: local changes in the environment", urgent=True)
                await self._flush(record, op)
                return

        if kind in BUILD_OPS and record.trusted is False and not await self._still_approved(record, op):
            return

        if kind in BUILD_OPS:
            env_extra = await self._git_credentials(record)
            argv = devpod.up_argv(
                dp, record.ws_id, devpod.pr_source(self.settings.github_url, record.owner, record.repo, record.number),
                recreate=(kind == "recreate"), reset=(kind in ("reset", "sync")), ide=record.ide,
                devcontainer_path=record.devcontainer_path,
                provider_options={"RESOURCES": record.resources} if record.resources else None,
                labels={"repo": f"{record.owner}.{record.repo}", "pr": str(record.number)})
            result = await self._run(argv, dp.up_timeout, env_extra=env_extra, on_line=on_line)
        elif kind == "stop":
            result = await self._run(devpod.stop_argv(dp, record.ws_id), dp.stop_timeout, on_line=on_line)
        elif kind == "delete":
            result = await self._run(devpod.delete_argv(dp, record.ws_id), dp.delete_timeout, on_line=on_line)
            if result.ok:
                # Some DevPod versions exit 0 on a failed delete: confirm it is really gone.
                listing = await self._run(devpod.list_argv(dp), dp.status_timeout)
                if listing.ok and any(w.get("id") == record.ws_id for w in devpod.parse_list(listing.stdout)):
                    result = dataclasses.replace(result, exit_code=1)
                    record.errors = ["DevPod said the workspace was deleted, but it is still listed."]
        else:  # status
            result = await self._run(devpod.status_argv(dp, record.ws_id), dp.status_timeout)
        await self._conclude(record, op, result)

    async def _still_approved(self, record: EnvRecord, op: Op) -> bool:
        """Untrusted code is built only at the approved commit: DevPod clones the PR ref as it is
        *now*, so make sure the head has not moved since the approval (else pause and say so)."""
        head = (await self.pr_api(record).get())["head"]["sha"]
        if head == record.approved_sha:
            return True
        record.head_sha = head
        record.state = "running" if record.env_sha else "none"
        record.phase, record.op = None, None
        record.note = self.paused_note(record)
        self._finish_action(record, op, "waiting for approval")
        self._save(record)
        if op.check_run_id is not None:
            self._publish_check(record, op, status="completed", conclusion="action_required",
                                title="Waiting for a maintainer's approval of this commit", urgent=True)
        await self._flush(record, op)
        return False

    def paused_note(self, record: EnvRecord) -> str:
        prefix = self.settings.command_prefix
        if record.approved_sha:
            return (f"New commits arrived after `{record.approved_sha[:7]}` was approved, and this pull request's "
                    "code is untrusted (it comes from a fork or from an author without write access), so the "
                    f"environment is **not** updated. A maintainer can review the changes and comment `{prefix} "
                    "approve` to let the environment follow the new head.")
        return ("This pull request's code is untrusted (it comes from a fork or from an author without write "
                "access), so it gets no environment until a maintainer reviews it and comments "
                f"`{prefix} approve`. The approval holds for the commit it was given on.")

    async def _checkout_state(self, record: EnvRecord) -> tuple[bool, str | None]:
        """(uncommitted changes?, the commit checked out) inside the workspace; unknown counts as
        clean and None. Runs one fixed command over ``devpod ssh``: nothing user-controlled in it."""
        command = devpod.wrap_with_exit_marker(
            'echo "__DEVENV_HEAD=$(git rev-parse --verify -q HEAD 2>/dev/null)"; '
            "git status --porcelain --untracked-files=no 2>/dev/null")
        result = await self._run(devpod.ssh_command_argv(self.dp, record.ws_id, command), self.dp.ssh_timeout)
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

    async def _git_credentials(self, record: EnvRecord) -> dict[str, str] | None:
        """For private repositories, a read-only token narrowed to this repo, for one DevPod process."""
        if not record.private or self.auth is None:
            return None
        answer = await self.auth.mint(record.installation_id,
                                      {"repositories": [record.repo], "permissions": {"contents": "read"}})
        self.masker.add(answer["token"])
        return devpod.git_credential_env(answer["token"], self.askpass)

    async def _conclude(self, record: EnvRecord, op: Op, result: devpod.RunResult) -> None:
        kind = op.kind
        record.phase = None
        record.op = None
        if result.timed_out:
            outcome, conclusion = "timed out", "timed_out"
            record.state = "failed"
            record.errors = result.errors() + [f"DevPod did not finish within {self._limit(kind):.0f} seconds."]
        elif result.ok:
            outcome, conclusion = "succeeded", "success"
            record.errors = record.errors if kind == "status" else []
            if kind in BUILD_OPS:
                record.state, record.env_sha = "running", op.head_sha
                await self._expose(record)
            elif kind == "stop":
                record.state = "stopped"
            elif kind == "delete":
                record.state, record.env_sha = "deleted", None
                await self._unexpose(record)
            else:
                status = devpod.parse_status(result.stdout)
                record.state = {"Running": "running", "Stopped": "stopped", "Busy": record.state,
                                "NotFound": "deleted"}.get(status.state.value, record.state)
        else:
            outcome, conclusion = "failed", "failure"
            if kind == "status" and devpod.workspace_missing(result.lines):
                outcome, conclusion, record.state = "succeeded", "success", "none"
            else:
                record.errors = record.errors or result.errors() or [f"DevPod exited with code {result.exit_code}."]
                record.state = "failed" if kind in BUILD_OPS or kind == "delete" else record.state
        self._finish_action(record, op, outcome)
        self._save(record)
        if op.check_run_id is not None:
            title = {"success": "The environment is ready" if kind in BUILD_OPS else "Done",
                     "failure": f"{VERB_TITLES[kind]} failed",
                     "timed_out": f"{VERB_TITLES[kind]} timed out"}[conclusion]
            self._publish_check(record, op, status="completed", conclusion=conclusion, title=title, urgent=True)
        await self._flush(record, op)
        if kind == "delete" and conclusion == "success":
            self._forget_if_idle(record)

    def _forget_if_idle(self, record: EnvRecord) -> None:
        """A deleted environment leaves nothing behind (memory, journal) unless more work waits."""
        slot = self.slots.get(record.ws_id)
        if slot is None or not slot.pending:
            self.journal.forget(record.ws_id)
            self.records.pop(record.ws_id, None)

    @staticmethod
    def _title(op: Op) -> str:
        return VERB_TITLES[op.kind] + (" (resumed after a bot restart)" if op.resumed else "")

    def _limit(self, kind: str) -> float:
        return {"stop": self.dp.stop_timeout, "delete": self.dp.delete_timeout,
                "status": self.dp.status_timeout}.get(kind, self.dp.up_timeout)

    def _finish_action(self, record: EnvRecord, op: Op, outcome: str) -> None:
        record.last_action = Action(verb=op.kind, by=op.requested_by, at=self.clock(), outcome=outcome)
        self._react(record, op, "rocket" if outcome == "succeeded" else "confused")

    def _react(self, record: EnvRecord, op: Op, content: str) -> None:
        """Answer the command comment that asked for ``op`` (if one did) with a reaction."""
        pr = self.pr_api(record)
        for comment_id in dict.fromkeys([*_ids(op.comment_id), *op.also_notify]):

            async def write(comment_id: int = comment_id) -> None:
                await pr.react(comment_id, content)

            self.publisher.mark(("reaction", record.ws_id, comment_id), write, urgent=True)

    async def _flush(self, record: EnvRecord, op: Op) -> None:
        self._publish_comment(record, urgent=True)
        await self.publisher.flush(("check", record.ws_id, op.check_run_id))
        await self.publisher.flush(("comment", record.ws_id))

    async def _run(self, argv: list[str], timeout: float, **kwargs: Any) -> devpod.RunResult:
        self.devpod_runs += 1
        try:
            return await devpod.run(argv, settings=self.dp, timeout=timeout, masker=self.masker, **kwargs)
        except (FileNotFoundError, PermissionError) as exc:
            message = (f"DevPod could not be started ({exc.__class__.__name__}: {argv[0]}). "
                       "Install DevPod on the bot's host or point DEVPOD_BIN at it.")
            log.error(message)
            return devpod.RunResult(argv=argv, exit_code=127, timed_out=False, duration=0.0,
                                    lines=[devpod.LogLine(message=message, level="fatal", stream="stderr",
                                                          text=message)])

    # ------------------------------------------------------------------ publishing
    def pr_api(self, record: EnvRecord) -> PullRequestAPI:
        return PullRequestAPI(self.github.installation(record.installation_id),
                              PullRef(record.installation_id, record.owner, record.repo, record.number))

    def _save(self, record: EnvRecord) -> None:
        record.updated_at = self.clock()
        self.journal.save(record)

    def _summary(self, record: EnvRecord, op: Op) -> str:
        return render("check_summary.md.j2", r=record, op=op, prefix=self.settings.command_prefix,
                      ssh=self.access(record))

    def _publish_check(self, record: EnvRecord, op: Op, *, status: str, title: str, conclusion: str | None = None,
                       summary: str | None = None, urgent: bool = False) -> None:
        if op.check_run_id is None:
            return
        check_id = op.check_run_id
        snapshot = dataclasses.replace(record, errors=list(record.errors))

        async def write() -> None:
            default_summary, text = self.check_texts(snapshot, op)
            actions = self._actions(snapshot, conclusion) if status == "completed" else None
            # GitHub wants a page with the details when it asks for action: the PR, whose comment says what.
            details = (f"{self.settings.github_url}/{snapshot.owner}/{snapshot.repo}/pull/{snapshot.number}"
                       if conclusion == "action_required" else None)
            await self.pr_api(snapshot).update_check(
                check_id, status=status, conclusion=conclusion, actions=actions, details_url=details,
                output=check_output(title, summary or default_summary, text))

        self.publisher.mark(("check", record.ws_id, check_id), write, urgent=urgent)

    def _actions(self, record: EnvRecord, conclusion: str | None) -> list[dict[str, str]]:
        if conclusion in ("failure", "timed_out", "cancelled"):
            chosen = [("retry", "Retry", "Run the same operation again"),
                      ("recreate", "Recreate", "Rebuild the container from scratch"),
                      ("delete", "Delete", "Delete the environment")]
        elif record.state == "running":
            chosen = [("recreate", "Recreate", "Rebuild the container from scratch"),
                      ("stop", "Stop", "Stop it; /devenv up wakes it"),
                      ("delete", "Delete", "Delete the environment")]
        elif record.state == "stopped":
            chosen = [("wake", "Wake", "Start the stopped environment"),
                      ("delete", "Delete", "Delete the environment")]
        else:
            chosen = [("retry", "Retry", "Run the same operation again")]
        return [{"label": label, "identifier": ident, "description": desc} for ident, label, desc in chosen[:3]]

    def access(self, record: EnvRecord) -> dict[str, Any]:
        dp = self.dp
        label_key = f"{dp.label_prefix}/workspace"
        preview = self.settings.exposure.domain if self.settings.exposure is not None else None
        return {
            "devpod_ssh": f"devpod ssh {record.ws_id}",
            "ssh": f"ssh {record.ws_id}.devpod",
            # DevPod puts pods in "devpod" unless KUBERNETES_NAMESPACE says otherwise (CONTRACT §5.1).
            "kubectl": (f"kubectl exec -it -n {dp.namespace or 'devpod'} "
                        f"$(kubectl get pod -n {dp.namespace or 'devpod'} -l {label_key}={record.ws_id} -o name) "
                        "-- bash"),
            "ide_host": f"code-{record.ws_id}.{preview}" if preview else None,
            "preview_domain": preview,
        }

    def comment_body(self, record: EnvRecord) -> str:
        return render("comment.md.j2", r=record, prefix=self.settings.command_prefix, access=self.access(record))

    def check_texts(self, record: EnvRecord, op: Op) -> tuple[str, str | None]:
        """The summary and (when there are errors) the text of the check run."""
        return self._summary(record, op), render("check_text.md.j2", r=record) if record.errors else None

    def _publish_comment(self, record: EnvRecord, *, urgent: bool = False, delay: float = 0.0) -> None:
        snapshot = dataclasses.replace(record, errors=list(record.errors))

        async def write() -> None:
            body = self.comment_body(snapshot)
            current = self.records.get(snapshot.ws_id, snapshot)
            comment_id = await self.pr_api(snapshot).upsert_comment(body, current.comment_id)
            if current.comment_id != comment_id:
                current.comment_id = comment_id
                self._save(current)

        self.publisher.mark(("comment", record.ws_id), write, urgent=urgent, delay=delay)
