"""The prebuild queue: per repository one ``devpod build`` at a time, per branch only the newest push.

Design.  :meth:`Prebuilds.request` returns at once.  Each repository has at most one worker task, which
takes the waiting jobs in the order their branches were first asked for.  A branch has at most one
waiting job: a newer push replaces it (its check run is concluded ``skipped``, naming the newer commit),
so a burst of pushes while a build runs ends in two builds, the running one and the newest.  A request
for the commit already waiting or building changes nothing.

``devpod build`` runs with the ``docker`` provider (building needs a Docker driver, CONTRACT §10), with
``DOCKER_HOST`` and ``DOCKER_CONFIG`` (the registry's credentials, mounted from the deployment's Secret)
in its environment only: no ``up``, workspace, log line, comment or check run ever gets them.  Private
repositories are cloned with a read-only token for that one process, as ``up`` does.

Jobs not finished are kept in the ledger's directory (``prebuild-jobs.json``): after a restart they run
again and edit the check run they had, so none is left queued or in progress for good.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, Protocol

from bot import devpod
from bot.core.files import write_atomic
from bot.prebuilds import plan
from bot.prebuilds.checks import Job, PrebuildChecks
from bot.prebuilds.ledger import PrebuildLedger
from bot.settings.prebuilds import PrebuildSettings

__all__ = ["Prebuilds", "Runner"]

log = logging.getLogger(__name__)

#: DevPod's messages while building, and the phase each starts (shown on the check run).
_PHASES = (("Clone repository", "cloning the repository"), ("Building devcontainer", "building the image"),
           ("The push refers to repository", "pushing the image"))


class Runner(Protocol):
    """What runs DevPod for the environments (bot.environments.operations.Operations): shared, so one masker
    and one clone-token service serve both."""

    masker: devpod.Masker
    git_access: devpod.GitAccess

    async def run(self, argv: list[str], timeout: float, **kwargs: Any) -> devpod.RunResult: ...

    async def mint(self, installation_id: int, repo: str, contents: str) -> str | None: ...


class Prebuilds:
    """Prebuilds of base branches: the queue, the builds, their check runs and the ledger."""

    def __init__(self, settings: PrebuildSettings, dp: devpod.DevPodSettings, *, runner: Runner, checks: PrebuildChecks,
                 ledger: PrebuildLedger, github_url: str) -> None:
        self.settings, self.dp, self.runner, self.checks = settings, dp, runner, checks
        self.ledger, self.github_url = ledger, github_url
        self._waiting: dict[str, dict[str, Job]] = {}  # owner/repo (lower) -> branch -> the newest job
        self._running: dict[str, Job] = {}
        self._workers: dict[str, asyncio.Task[None]] = {}
        self._jobs_path = Path(ledger.path).with_name("prebuild-jobs.json")
        self.builds = 0  # `devpod build` runs started (bench, tests)
        self._docker_ready = False  # the `docker` provider is added to DevPod's context (once per process)
        checks.on_created = self._save_jobs

    def repository(self, owner: str, repo: str) -> str:
        """Where this GitHub repository's prebuilds live: ``<DEVENV_PREBUILD_REPOSITORY>/<owner>/<repo>``."""
        return plan.image_repository(self.settings.repository, owner, repo)

    # ------------------------------------------------------------------ the queue
    def request(self, job: Job) -> bool:
        """Queue a prebuild; False when that commit of the branch is already waiting or building."""
        key = job.full_name.lower()
        running = self._running.get(key)
        waiting = self._waiting.setdefault(key, {})
        older = waiting.get(job.branch)
        if (running is not None and (running.branch, running.sha) == (job.branch, job.sha)) or \
                (older is not None and older.sha == job.sha):
            return False
        if older is not None:  # the newest push wins: the older one will never be built
            older.status, older.conclusion, older.superseded_by = "completed", "skipped", job.sha
            self.checks.show(older, urgent=True)
        waiting[job.branch] = job
        job.behind = running.sha if running is not None else None
        self.checks.show(job, urgent=True)
        self._save_jobs()
        if key not in self._workers or self._workers[key].done():
            self._workers[key] = asyncio.get_running_loop().create_task(self._work(key), name=f"prebuild-{key}")
        return True

    def waiting(self, owner: str, repo: str) -> list[Job]:
        return list(self._waiting.get(f"{owner}/{repo}".lower(), {}).values())

    async def _work(self, key: str) -> None:
        waiting = self._waiting[key]
        while waiting:
            job = waiting.pop(next(iter(waiting)))
            self._running[key] = job
            try:
                await self._build(job)
            except asyncio.CancelledError:
                waiting.setdefault(job.branch, job)  # kept for the next start (the check run stays as it is)
                raise
            except Exception:  # a bug: the check run still ends
                log.exception("prebuild of %s@%s failed", job.full_name, job.branch)
                self._conclude(job, "failure", ("the bot failed while building; see its log",))
            finally:
                self._running.pop(key, None)
                self._save_jobs()
            for other in waiting.values():
                other.behind = None

    # ------------------------------------------------------------------ one build
    async def _build(self, job: Job) -> None:
        job.status, job.phase, job.behind = "in_progress", None, None
        self.checks.show(job, urgent=True)
        problem = await self._prepare_docker_provider()
        if problem:
            self._conclude(job, "failure", problem)
            return
        env = dict(self._docker_env())
        clone = await self._clone_credentials(job)
        env.update(clone or {})
        argv = devpod.build_argv(
            self.dp, plan.build_source(self.github_url, job.owner, job.repo, job.sha),
            self.repository(job.owner, job.repo), clone_strategy=job.clone_strategy,
            devcontainer_path=job.devcontainer_path,
            platform=f"linux/{self.dp.architecture}" if self.dp.architecture else None)
        self.builds += 1
        log.info("prebuild of %s@%s (%s): %s", job.full_name, job.branch, job.sha[:7], job.why)
        result = await self.runner.run(argv, self.settings.timeout, env_extra=env, on_line=self._on_line(job))
        image = next((m.group(1) for line in result.lines if (m := plan.PUSHED.match(line.message))), None)
        if result.ok and image:
            job.image = image
            self.ledger.record(job.full_name, job.branch, job.sha, image)
            self._conclude(job, "success")
        elif result.timed_out:
            self._conclude(job, "timed_out", tuple(result.errors()) + (
                f"devpod build was stopped after {round(self.settings.timeout)} seconds (DEVENV_PREBUILD_TIMEOUT)",))
        elif not result.ok:
            self._conclude(job, "failure", tuple(result.errors()) or (
                f"devpod build exited with status {result.exit_code}",))
        else:
            self._conclude(job, "failure", ("devpod build ended without pushing an image",))

    async def _prepare_docker_provider(self) -> tuple[str, ...]:
        """Add DevPod's ``docker`` provider to the context if it is not there (idempotent); the errors, if any."""
        if self._docker_ready:
            return ()
        dp = self.dp
        listing = await self.runner.run(devpod.provider_list_argv(dp), dp.provider_timeout)
        exists = listing.ok and "docker" in devpod.parse_provider_list(listing.stdout)
        argv = devpod.docker_provider_argv(dp, self.settings.docker_host, exists=exists)
        result = await self.runner.run(argv, dp.provider_timeout) if argv else listing
        if argv and not result.ok:
            return ("DevPod's docker provider could not be added:", *result.errors())
        self._docker_ready = True
        return ()

    def _docker_env(self) -> dict[str, str]:
        env: dict[str, str] = {}
        if self.settings.docker_host:
            env["DOCKER_HOST"] = self.settings.docker_host
        if self.settings.docker_config is not None:
            env["DOCKER_CONFIG"] = str(self.settings.docker_config)
        return env

    async def _clone_credentials(self, job: Job) -> dict[str, str] | None:
        if not job.private:
            return None
        token = await self.runner.mint(job.installation_id, job.repo, "read")
        if token is None:
            return None
        self.runner.masker.add(token)
        return await self.runner.git_access.grant(token)

    def _on_line(self, job: Job) -> Callable[[devpod.LogLine], None]:
        def on_line(line: devpod.LogLine) -> None:
            for start, phase in _PHASES:
                if line.message.startswith(start) and job.phase != phase:
                    job.phase = phase
                    self.checks.show(job)
        return on_line

    def _conclude(self, job: Job, conclusion: str, errors: tuple[str, ...] = ()) -> None:
        job.status, job.conclusion, job.errors = "completed", conclusion, tuple(e[:300] for e in errors[-10:])
        self.checks.show(job, urgent=True)
        log.info("prebuild of %s@%s (%s): %s %s", job.full_name, job.branch, job.sha[:7], conclusion, job.image or "")

    # ------------------------------------------------------------------ start and stop
    def _save_jobs(self) -> None:
        jobs = [j.to_json() for w in self._waiting.values() for j in w.values()]
        jobs += [j.to_json() for j in self._running.values()]
        self._jobs_path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(self._jobs_path, json.dumps(jobs), durable=True)

    def resume(self) -> None:
        """Queue again the jobs a stop or crash left unfinished (their check runs are edited, not duplicated)."""
        try:
            saved = json.loads(self._jobs_path.read_text())
        except (OSError, ValueError):
            return
        for data in saved if isinstance(saved, list) else []:
            with contextlib.suppress(TypeError, KeyError):
                job = Job(**{**data, "status": "queued", "phase": None, "behind": None})
                self.request(job)

    async def drain(self, timeout: float) -> None:
        """On shutdown: builds in flight are stopped (and resumed at the next start); the check runs are written."""
        workers = [w for w in self._workers.values() if not w.done()]
        for worker in workers:
            worker.cancel()
        await asyncio.gather(*workers, return_exceptions=True)
        self._save_jobs()
        await self.checks.close()

    async def idle(self, wait: Callable[[float], Awaitable[Any]] = asyncio.sleep) -> None:
        """Wait until no build runs or waits and every check-run write is done (tests, the bench)."""
        while any(not w.done() for w in self._workers.values()) or self.checks.publisher.tasks():
            await wait(0.01)
