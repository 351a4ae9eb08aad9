"""Domain verbs bound to one pull request: the sticky comment, check runs, reactions, replies.

Handlers and the environment manager speak these verbs, never raw URLs.
Output texts are cut to GitHub's byte limits here, once, safely for UTF-8.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

from bot.text.markdown import truncate_bytes

log = logging.getLogger(__name__)

STICKY_MARKER = "<!-- devenv-bot:sticky -->"
CHECK_TEXT_LIMIT = 65535  # bytes, for output.summary and output.text
COMMENT_LIMIT = 65536  # characters


@dataclasses.dataclass(frozen=True)
class PullRef:
    """Identifies a PR; jobs carry this, never tokens or client objects."""

    installation_id: int
    owner: str
    repo: str
    number: int

    @property
    def full_name(self) -> str:
        return f"{self.owner}/{self.repo}"

    def __str__(self) -> str:
        return f"{self.owner}/{self.repo}#{self.number}"


def check_output(title: str, summary: str, text: str | None = None) -> dict[str, str]:
    output = {"title": truncate_bytes(title, 1000, "…"), "summary": truncate_bytes(summary, CHECK_TEXT_LIMIT)}
    if text:
        output["text"] = truncate_bytes(text, CHECK_TEXT_LIMIT)
    return output


def cut_comment(body: str) -> str:
    if len(body) <= COMMENT_LIMIT:
        return body
    marker = "\n\n…(cut to fit GitHub's comment limit)"
    return body[: COMMENT_LIMIT - len(marker)] + marker


class PullRequestAPI:
    def __init__(self, gh: Any, ref: PullRef) -> None:
        self.gh = gh
        self.ref = ref
        self._repo_path = f"/repos/{ref.owner}/{ref.repo}"

    async def get(self) -> dict[str, Any]:
        return await self.gh.getitem(f"{self._repo_path}/pulls/{self.ref.number}")

    # -- the sticky comment ---------------------------------------------------
    async def find_sticky(self) -> int | None:
        """The id of the bot's own comment carrying the marker, if there is one."""
        async for comment in self.gh.getiter(f"{self._repo_path}/issues/{self.ref.number}/comments?per_page=100"):
            user = comment.get("user") or {}
            if user.get("type") == "Bot" and STICKY_MARKER in (comment.get("body") or ""):
                return comment["id"]
        return None

    async def upsert_comment(self, body: str, comment_id: int | None) -> int:
        """Edit the sticky comment in place (creating it the first time); returns its id."""
        body = cut_comment(body if STICKY_MARKER in body else f"{STICKY_MARKER}\n{body}")
        if comment_id is None:
            comment_id = await self.find_sticky()
        if comment_id is not None:
            try:
                await self.gh.patch(f"{self._repo_path}/issues/comments/{comment_id}", data={"body": body})
                return comment_id
            except Exception as exc:  # deleted by someone: make a new one
                if getattr(exc, "status_code", None) != 404:
                    raise
        answer = await self.gh.post(f"{self._repo_path}/issues/{self.ref.number}/comments", data={"body": body})
        return answer["id"]

    async def reply(self, body: str) -> int:
        answer = await self.gh.post(f"{self._repo_path}/issues/{self.ref.number}/comments",
                                    data={"body": cut_comment(body)})
        return answer["id"]

    # -- reactions ------------------------------------------------------------
    async def react(self, comment_id: int, content: str) -> None:
        await self.gh.post(f"{self._repo_path}/issues/comments/{comment_id}/reactions", data={"content": content})

    # -- check runs -----------------------------------------------------------
    async def create_check(self, *, name: str, head_sha: str, external_id: str, status: str,
                           output: dict[str, str], actions: list[dict[str, str]] | None = None,
                           conclusion: str | None = None, details_url: str | None = None) -> int:
        data: dict[str, Any] = {"name": name, "head_sha": head_sha, "external_id": external_id,
                                "status": status, "output": output}
        if details_url:
            data["details_url"] = details_url
        if conclusion:
            data["conclusion"] = conclusion
        if actions:
            data["actions"] = actions[:3]
        answer = await self.gh.post(f"{self._repo_path}/check-runs", data=data)
        return answer["id"]

    async def update_check(self, check_run_id: int, *, status: str, output: dict[str, str],
                           conclusion: str | None = None, actions: list[dict[str, str]] | None = None,
                           details_url: str | None = None) -> None:
        data: dict[str, Any] = {"status": status, "output": output}
        if details_url:
            data["details_url"] = details_url
        if conclusion:
            data["conclusion"] = conclusion
        if actions is not None:
            data["actions"] = actions[:3]
        await self.gh.patch(f"{self._repo_path}/check-runs/{check_run_id}", data=data)


# -- a repository's open pull requests, asked frugally -------------------------------------------

@dataclasses.dataclass(frozen=True)
class OpenPull:
    """What the catch-up reads of one open PR in ``GET /repos/{owner}/{repo}/pulls`` (kept small:
    a listing's items are ~20 kB each, and the last listing of every repository is remembered)."""

    number: int
    head_sha: str
    head_ref: str
    head_full_name: str  # the head repository ("" when the fork was deleted)
    base_sha: str
    title: str
    author: str
    draft: bool

    @classmethod
    def of(cls, item: dict[str, Any]) -> OpenPull:
        head, base = item.get("head") or {}, item.get("base") or {}
        return cls(number=item["number"], head_sha=head.get("sha") or "", head_ref=head.get("ref") or "",
                   head_full_name=(head.get("repo") or {}).get("full_name") or "",
                   base_sha=base.get("sha") or "", title=item.get("title") or "",
                   author=(item.get("user") or {}).get("login") or "", draft=bool(item.get("draft")))


@dataclasses.dataclass
class _Page:
    etag: str
    pulls: list[OpenPull]
    next_url: str | None


@dataclasses.dataclass(frozen=True)
class Listing:
    """A repository's open PRs; ``changed`` is False when every page answered 304 (``calls``: requests made)."""

    pulls: dict[int, OpenPull]
    changed: bool
    calls: int


class OpenPullLister:
    """Lists repositories' open pull requests with conditional requests.

    One ``GET /repos/{owner}/{repo}/pulls?state=open&per_page=100`` per repository (and one more per
    further page), each sent with ``If-None-Match`` and the ETag of that page's last answer: GitHub
    answers 304 when nothing changed, which does not count against the rate limit, and the page
    remembered is used. https://docs.github.com/en/rest/using-the-rest-api/best-practices-for-using-the-rest-api#use-conditional-requests-if-appropriate

    ``send(installation_id, url, headers)`` is the transport (the GitHub client's, with credentials,
    retries and metrics); it answers ``(status, headers, body)``.
    """

    def __init__(self, send: Any, api_url: str) -> None:
        self._send = send
        self._api_url = api_url.rstrip("/")
        self._pages: dict[str, _Page] = {}  # page URL -> its last answer

    def first_url(self, owner: str, repo: str) -> str:
        return f"{self._api_url}/repos/{owner}/{repo}/pulls?state=open&per_page=100"

    async def list_open(self, installation_id: int, owner: str, repo: str) -> Listing:
        """Every open PR of the repository; raises ``gidgethub.HTTPException`` (and the transport's
        errors) on a failed call, so a repository that cannot be read is never taken for one with
        no open PRs."""
        from gidgethub import sansio

        pulls: dict[int, OpenPull] = {}
        changed, calls = False, 0
        url: str | None = self.first_url(owner, repo)
        while url is not None and calls < 100:  # 10,000 open PRs: more is a loop, not a repository
            headers = sansio.create_headers("devenv-bot", accept=sansio.accept_format())
            known = self._pages.get(url)
            if known is not None:
                headers["if-none-match"] = known.etag
            status, answer_headers, body = await self._send(installation_id, url, headers)
            calls += 1
            if status == 304 and known is not None:
                page = known
            else:
                data, _, more = sansio.decipher_response(status, answer_headers, body)
                page = _Page(answer_headers.get("etag") or "", [OpenPull.of(item) for item in data or []], more)
                changed = True
                if page.etag:
                    self._pages[url] = page
            pulls.update((pull.number, pull) for pull in page.pulls)
            url = page.next_url
        return Listing(pulls, changed, calls)
