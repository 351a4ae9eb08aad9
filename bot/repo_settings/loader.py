"""Reading ``.github/devenv.yml`` from a pull request's base commit through GitHub, once per commit.

Design.  :class:`RepoSettingsLoader` does the one GET through the contents API
at the PR's *base* SHA (never its head: see :mod:`bot.repo_settings.schema`),
caches the outcome per base SHA (a commit never changes, so neither does the
file at it) and turns a broken file into the defaults plus the problems, for
the caller to show on the PR (:func:`bot.repo_settings.problems.render_problems`).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
import re
from typing import Any

from cachetools import LRUCache

from bot.github.client import is_not_found
from bot.repo_settings.problems import show
from bot.repo_settings.schema import MAX_BYTES, SETTINGS_PATH, RepoSettings, SettingsError
from bot.repo_settings.validate import parse_settings

__all__ = ["RepoSettingsLoader"]

log = logging.getLogger(__name__)

_SHA = re.compile(r"[0-9a-fA-F]{40}|[0-9a-fA-F]{64}")
_CONTENTS = "/repos/{owner}/{repo}/contents/{+path}{?ref}"


class RepoSettingsLoader:
    """Reads ``.github/devenv.yml`` at a base commit, once per commit (an LRU of ``maxsize`` commits).

    Share one loader in the process.  Errors other than 404 (after the client's
    own retries) propagate and are not cached, so the next event tries again.
    """

    def __init__(self, *, maxsize: int = 1024) -> None:
        self._cache: LRUCache[tuple[str, str, str], tuple[RepoSettings, tuple[str, ...]]] = LRUCache(maxsize=maxsize)
        self._locks: dict[tuple[str, str, str], asyncio.Lock] = {}

    async def load(self, gh: Any, owner: str, repo: str, base_sha: str) -> tuple[RepoSettings, list[str]]:
        """The settings at ``base_sha`` and the file's problems (to show on the PR; empty if none).

        No file: the defaults and no problems.  A broken file: the defaults and its problems.
        ``base_sha`` must be a commit SHA (``pull_request.base.sha``), never a branch name,
        since results are cached for good.
        """
        if not isinstance(base_sha, str) or not _SHA.fullmatch(base_sha):
            raise ValueError(f"base_sha must be a commit SHA, not {base_sha!r}")
        key = (owner.lower(), repo.lower(), base_sha.lower())
        cached = self._cache.get(key)
        if cached is None:
            lock = self._locks.setdefault(key, asyncio.Lock())
            try:
                async with lock:  # events for one base commit often arrive together: one GET
                    cached = self._cache.get(key)
                    if cached is None:
                        settings, problems = await self._fetch(gh, owner, repo, base_sha)
                        cached = self._cache[key] = (settings, tuple(problems))
            finally:
                if self._locks.get(key) is lock and not lock.locked():
                    del self._locks[key]
        return cached[0], list(cached[1])

    async def _fetch(self, gh: Any, owner: str, repo: str, base_sha: str) -> tuple[RepoSettings, list[str]]:
        where = f"{owner}/{repo}@{base_sha[:7]}"
        try:
            answer = await gh.getitem(_CONTENTS, {"owner": owner, "repo": repo, "path": SETTINGS_PATH, "ref": base_sha})
        except Exception as exc:
            if is_not_found(exc):
                log.debug("no %s in %s", SETTINGS_PATH, where)
                return RepoSettings(), []
            raise
        problems = _file_problems(answer)
        if not problems:
            text, problems = _decode(answer)
            if text is not None:
                try:
                    return parse_settings(text), []
                except SettingsError as exc:
                    problems = exc.problems
        log.info("%s in %s has %d problem(s); using the defaults", SETTINGS_PATH, where, len(problems))
        return RepoSettings(), problems


def _file_problems(answer: Any) -> list[str]:
    if isinstance(answer, list):
        return [f"{SETTINGS_PATH} is a directory; the settings must be a file"]
    if not isinstance(answer, dict) or answer.get("type") != "file":
        kind = answer.get("type") if isinstance(answer, dict) else None
        return [f"{SETTINGS_PATH} is a {kind or 'something other than a file'}; the settings must be a"
                " regular file (a symbolic link only works to a file in the repository)"]
    size = answer.get("size")
    if isinstance(size, int) and size > MAX_BYTES:
        return [f"{SETTINGS_PATH} is {size:,} bytes long; the limit is {MAX_BYTES:,} bytes"]
    if answer.get("encoding") != "base64":
        return [f"{SETTINGS_PATH} could not be read through GitHub's contents API"
                f" (encoding {show(answer.get('encoding'))})"]
    return []


def _decode(answer: dict[str, Any]) -> tuple[str | None, list[str]]:
    try:
        data = base64.b64decode(answer.get("content") or "")
    except (binascii.Error, ValueError):
        return None, [f"{SETTINGS_PATH}: GitHub sent content that is not base64"]
    if len(data) > MAX_BYTES:
        return None, [f"{SETTINGS_PATH} is {len(data):,} bytes long; the limit is {MAX_BYTES:,} bytes"]
    try:
        return data.decode("utf-8-sig"), []
    except UnicodeDecodeError as exc:
        return None, [f"{SETTINGS_PATH} is not UTF-8 text (byte {exc.object[exc.start]:#04x} at offset"
                      f" {exc.start}); save it as UTF-8"]
