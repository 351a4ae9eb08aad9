"""The pure decisions of prebuilds: which branches get one, whether a push changes the devcontainer, the
image repository of a GitHub repository, and what DevPod's output says about an image.

Whether a push changes the devcontainer is decided from the push's own commits (the webhook lists each
commit's added, modified and removed files), not by computing DevPod's prebuild hash: the bot never holds
the files, and DevPod computes that hash when it builds.  The files watched are the devcontainer's
directory (where its config, Dockerfile, features and usually its build context live), a root
``.devcontainer.json`` and ``.github/devenv.yml`` (it may change the devcontainer's path).  When the push
cannot tell (a new or force-pushed branch, or more commits than the webhook lists: GitHub sends at most
20), the branch is built, as it is when it has no prebuild yet.  A build context outside the
devcontainer's directory is not watched: ``/devenv prebuild`` builds it by hand.
"""

from __future__ import annotations

import fnmatch
import posixpath
import re
from collections.abc import Mapping
from typing import Any, Final

__all__ = [
    "PUSHED",
    "FOUND",
    "build_source",
    "devcontainer_change",
    "image_repository",
    "wants_branch",
]

#: GitHub's push webhook lists at most this many commits (the rest only counted in ``size``... if at all).
PUSH_COMMITS_LISTED: Final = 20
SETTINGS_FILE: Final = ".github/devenv.yml"
#: ``devpod build``'s last line on success (sic: D:cmd/agent/workspace/build.go).
PUSHED: Final = re.compile(r"^Successfully build and pushed image (\S+)$")
#: ``devpod up`` found a prebuild (D:pkg/devcontainer/build.go, info level).
FOUND: Final = re.compile(r"^Found existing prebuilt image (\S+)$")
_COMPONENT = re.compile(r"[^a-z0-9]+")


def image_repository(prefix: str, owner: str, repo: str) -> str:
    """``<prefix>/<owner>/<repo>`` as a Docker repository path (lower case; other characters become ``-``)."""
    def part(name: str) -> str:
        return _COMPONENT.sub("-", name.lower()).strip("-") or "x"

    return f"{prefix.rstrip('/')}/{part(owner)}/{part(repo)}"


def wants_branch(enabled: bool, branches: tuple[str, ...] | None, branch: str, default_branch: str | None) -> bool:
    """Whether ``branch`` gets prebuilds: the repository's ``prebuild.branches`` (names or patterns), else its
    default branch."""
    if not enabled:
        return False
    if branches is None:
        return bool(default_branch) and branch == default_branch
    return any(fnmatch.fnmatchcase(branch, pattern) for pattern in branches)


def watched(devcontainer_path: str | None) -> tuple[str, ...]:
    """The paths (a trailing ``/`` for a directory) whose change means a new prebuild."""
    directory = posixpath.dirname(devcontainer_path) if devcontainer_path else ".devcontainer"
    paths = [".devcontainer.json", SETTINGS_FILE, ".devcontainer/"]
    if devcontainer_path:
        paths.append(devcontainer_path)
    if directory:
        paths.append(directory + "/")
    return tuple(dict.fromkeys(paths))


def devcontainer_change(push: Mapping[str, Any], devcontainer_path: str | None, *, has_prebuild: bool) -> str | None:
    """Why this push needs a prebuild (for the logs and the check run), or None when it does not."""
    if not has_prebuild:
        return "the branch has no prebuild yet"
    if push.get("created") or push.get("forced"):
        return "the branch was created or force-pushed"
    commits = push.get("commits")
    if not isinstance(commits, list) or len(commits) >= PUSH_COMMITS_LISTED:
        return "the push lists too many commits to tell"
    paths = watched(devcontainer_path)
    for commit in commits:
        files = [f for key in ("added", "modified", "removed") for f in (commit.get(key) or [])]
        if any(not isinstance(commit.get(key), list) for key in ("added", "modified", "removed")):
            return "a commit of the push does not list its files"
        for name in files:
            if any(name.startswith(p) if p.endswith("/") else name == p for p in paths):
                return f"{name} changed"
    return None


def build_source(github_url: str, owner: str, repo: str, sha: str) -> str:
    """``devpod build``'s source for one commit: ``https://HOST/owner/repo@sha256:<sha>`` (CONTRACT §1.2)."""
    if not re.fullmatch(r"[0-9a-f]{40}", sha):
        raise ValueError(f"not a commit SHA: {sha!r}")
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", owner) or not re.fullmatch(r"[A-Za-z0-9_.-]+", repo):
        raise ValueError(f"not a GitHub repository: {owner}/{repo}")
    return f"{github_url.rstrip('/')}/{owner}/{repo}@sha256:{sha}"
