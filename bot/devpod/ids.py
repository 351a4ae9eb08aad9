"""Names DevPod and Kubernetes accept: workspace ids, label values, the ``--source`` of a PR.

All pure. A workspace id is derived from the pull request alone (never stored), so every
part of the bot, and a restarted bot, computes the same id for the same PR; it satisfies
DevPod's ``--id`` rules (CONTRACT §1.5) and stays unique when long or odd repository names
are cut or sanitised to the same text.
"""

from __future__ import annotations

import hashlib
import re

__all__ = ["ID_MAX_LEN", "LABEL_KEY", "check_id", "label_value", "pr_source", "workspace_id"]

#: CONTRACT §1.5: the characters and length ``--id`` accepts.
ID_MAX_LEN = 48
_ID_INVALID = re.compile(r"[^a-z0-9\-]+")

#: A Kubernetes label key: an optional DNS-subdomain prefix and ``/``, then a name of at most 63.
LABEL_KEY = re.compile(
    r"^([a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$"
)

_GH_NAME = re.compile(r"^[A-Za-z0-9._-]+$")


def check_id(ws_id: str) -> None:
    """Raise ValueError unless ``ws_id`` is an id DevPod accepts."""
    if not ws_id or _ID_INVALID.search(ws_id) or len(ws_id) > ID_MAX_LEN:
        raise ValueError(f"invalid workspace id {ws_id!r}")


def _sanitise(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def workspace_id(owner: str, repo: str, number: int) -> str:
    """``<sanitised repo>-pr<N>-<6 hex of sha256("owner/repo")>``, at most 48 characters.

    GitHub names are case-insensitive, so the hash is of the lower-cased full name. The
    hash keeps ids unique when the repo part is truncated or sanitised to the same text.
    """
    if number < 1:
        raise ValueError(f"pull request number must be positive, got {number}")
    digest = hashlib.sha256(f"{owner}/{repo}".lower().encode()).hexdigest()[:6]
    suffix = f"pr{number}-{digest}"
    if len(suffix) > ID_MAX_LEN:
        raise ValueError(f"pull request number {number} is too large for a workspace id")
    room = ID_MAX_LEN - len(suffix) - 1
    head = _sanitise(repo)[:room].strip("-") if room > 0 else ""
    return f"{head}-{suffix}" if head else suffix


def pr_source(github_web_url: str, owner: str, repo: str, number: int) -> str:
    """The ``--source`` for a PR: ``git:https://HOST/owner/repo@pull/N/head`` (CONTRACT §1.2)."""
    base = github_web_url.rstrip("/")
    if not re.match(r"^https?://[^/@\s]+(/[^@\s]*)?$", base):
        raise ValueError(f"not a GitHub web URL: {github_web_url!r}")
    for part in (owner, repo):
        if not _GH_NAME.match(part) or part in (".", ".."):
            raise ValueError(f"not a GitHub owner or repository name: {part!r}")
    if number < 1:
        raise ValueError(f"pull request number must be positive, got {number}")
    return f"git:{base}/{owner}/{repo}@pull/{number}/head"


def label_value(text: str) -> str:
    """Make ``text`` a valid Kubernetes label value: ``[A-Za-z0-9._-]``, ≤ 63, alnum at both ends."""
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "-", text)[:63]
    return re.sub(r"^[^A-Za-z0-9]+|[^A-Za-z0-9]+$", "", cleaned)
