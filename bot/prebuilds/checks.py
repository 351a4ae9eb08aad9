"""The ``devenv prebuild`` check run of each prebuild, on the commit it builds: queued → in progress (with the
phase) → success with the image, or failure with DevPod's meaningful lines, or skipped when a newer push of
the branch took its turn.

Writes go through a :class:`~bot.github.publish.Publisher` keyed by the job, so phase changes faster than
GitHub's write budget coalesce into one write; the first write creates the check run, later ones edit it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from bot.github.publish import RETRY_DELAYS, Publisher
from bot.github.pulls import check_output
from bot.text.templating import render

__all__ = ["CHECK_NAME", "Job", "PrebuildChecks", "texts"]

CHECK_NAME = "devenv prebuild"


@dataclasses.dataclass(eq=False)
class Job:
    """One prebuild: what to build and how far it got (identifiers only, never a token or a client)."""

    installation_id: int
    owner: str
    repo: str
    branch: str
    sha: str
    why: str  # what asked for it: "…changed", "requested by @login"
    devcontainer_path: str | None = None
    clone_strategy: str | None = None
    private: bool = False
    status: str = "queued"  # queued, in_progress, completed
    phase: str | None = None
    conclusion: str | None = None  # success, failure, timed_out, cancelled, skipped
    image: str | None = None
    errors: tuple[str, ...] = ()
    behind: str | None = None  # the commit whose build this one waits for
    superseded_by: str | None = None
    check_run_id: int | None = None

    @property
    def full_name(self) -> str:
        return f"{self.owner}/{self.repo}"

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def texts(job: Job, prefix: str) -> dict[str, str]:
    """The check run's output (title, summary) for the job as it is now."""
    title = render("prebuild_check.md.j2", part="title", j=job, prefix=prefix).strip()
    summary = render("prebuild_check.md.j2", part="summary", j=job, prefix=prefix).strip() + "\n"
    return check_output(title, summary)


class PrebuildChecks:
    """Shows each job on its check run; the newest state wins."""

    def __init__(self, github: Any, *, prefix: str, min_interval: float = 3.0,
                 retry_delays: tuple[float, ...] = RETRY_DELAYS) -> None:
        self.github = github  # bot.github.client.GitHubClient
        self.prefix = prefix
        self.publisher = Publisher(min_interval=min_interval, retry_delays=retry_delays)
        self.on_created: Callable[[], None] | None = None  # the queue keeps the new check run's id at once

    def show(self, job: Job, *, urgent: bool = False) -> None:
        self.publisher.mark(("prebuild", id(job)), lambda: self._write(job), urgent=urgent)

    async def flush(self, job: Job) -> None:
        await self.publisher.flush(("prebuild", id(job)))

    async def _write(self, job: Job) -> None:
        gh = self.github.installation(job.installation_id)
        data: dict[str, Any] = {"status": job.status, "output": texts(job, self.prefix)}
        if job.status == "completed":
            data["conclusion"] = job.conclusion
        base = f"/repos/{job.owner}/{job.repo}/check-runs"
        if job.check_run_id is None:
            answer = await gh.post(base, data={"name": CHECK_NAME, "head_sha": job.sha,
                                               "external_id": f"prebuild:{job.branch}"[:200], **data})
            job.check_run_id = answer["id"]
            if self.on_created is not None:  # a crash from now on edits this check run, never makes a second
                self.on_created()
        else:
            await gh.patch(f"{base}/{job.check_run_id}", data=data)

    async def close(self) -> None:
        await self.publisher.close()
