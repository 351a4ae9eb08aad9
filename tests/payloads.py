"""Webhook payloads for tests, taken from GitHub's real examples in ``../shared/github``.

Every payload handed to a test is validated against ``webhook-schemas.json``:
examples that fail their own schema are skipped, and derived payloads (a
comment on a PR, a bot sender, a fork PR, a new head SHA) are validated after
editing, so a test never feeds the bot something GitHub would not send.
"""

from __future__ import annotations

import copy
import functools
import json
from pathlib import Path
from typing import Any

import jsonschema

SHARED_GITHUB = Path(__file__).resolve().parents[1].parent / "shared" / "github"

INSTALLATION_ID = 1
REPO = "Codertocat/Hello-World"
PR_NUMBER = 2


@functools.lru_cache(maxsize=1)
def _examples() -> list[dict[str, Any]]:
    return json.loads((SHARED_GITHUB / "webhook-examples.json").read_text())


@functools.lru_cache(maxsize=1)
def _schemas() -> dict[str, Any]:
    return json.loads((SHARED_GITHUB / "webhook-schemas.json").read_text())


@functools.cache
def _validator(key: str) -> jsonschema.Draft7Validator:
    definitions = _schemas()["definitions"]
    return jsonschema.Draft7Validator({"$ref": f"#/definitions/{key}", "definitions": definitions})


def schema_key(event: str, payload: dict[str, Any]) -> str:
    action = payload.get("action")
    return f"{event}${action}" if action else f"{event}$event"


def validate(event: str, payload: dict[str, Any]) -> dict[str, Any]:
    """Raise ``jsonschema.ValidationError`` unless ``payload`` matches GitHub's schema."""
    _validator(schema_key(event, payload)).validate(payload)
    return payload


def example(event: str, action: str | None = None, *, with_installation: bool = True) -> dict[str, Any]:
    """A deep copy of the first schema-valid real example of ``event``/``action``."""
    for group in _examples():
        if group["name"] != event:
            continue
        for candidate in group["examples"]:
            if action is not None and candidate.get("action") != action:
                continue
            if with_installation and "installation" not in candidate and event != "ping":
                continue
            try:
                validate(event, candidate)
            except jsonschema.ValidationError:
                continue
            return copy.deepcopy(candidate)
    raise LookupError(f"no schema-valid example of {event} {action or ''}")


def _with_installation(payload: dict[str, Any]) -> dict[str, Any]:
    payload["installation"] = {"id": INSTALLATION_ID, "node_id": "MDIzOkludGVncmF0aW9uSW5zdGFsbGF0aW9uMQ=="}
    return payload


def pull_request(action: str, *, head_sha: str | None = None, fork: str | None = None,
                 number: int = PR_NUMBER, author: str | None = None, merged: bool = False,
                 draft: bool | None = None) -> dict[str, Any]:
    """A ``pull_request`` payload; ``fork="someone/Hello-World"`` makes the head come from a fork."""
    try:
        payload = example("pull_request", action)
    except LookupError:
        payload = example("pull_request", action, with_installation=False)
        _with_installation(payload)
    pr = payload["pull_request"]
    if number != pr["number"]:
        pr["number"] = payload["number"] = number
        for key in ("url", "html_url", "issue_url", "commits_url", "review_comments_url", "comments_url",
                    "diff_url", "patch_url"):
            if isinstance(pr.get(key), str):
                pr[key] = pr[key].replace(f"/{PR_NUMBER}", f"/{number}")
    if head_sha is not None:
        pr["head"]["sha"] = head_sha
        if action == "synchronize":
            payload["after"] = head_sha
    if fork is not None:
        owner, name = fork.split("/")
        head_repo = copy.deepcopy(pr["head"]["repo"])
        head_repo["full_name"] = fork
        head_repo["name"] = name
        head_repo["fork"] = True
        head_repo["owner"] = copy.deepcopy(head_repo["owner"])
        head_repo["owner"]["login"] = owner
        head_repo["id"] = head_repo["id"] + 1000
        pr["head"]["repo"] = head_repo
        pr["head"]["label"] = f"{owner}:{pr['head']['ref']}"
        pr["head"]["user"] = copy.deepcopy(head_repo["owner"])
    if author is not None:
        pr["user"]["login"] = author
        payload["sender"]["login"] = author
    if action == "closed":
        pr["state"] = "closed"
        pr["merged"] = merged
    if draft is not None:
        pr["draft"] = draft
    return validate("pull_request", payload)


def pr_comment(body: str, *, user: str = "Codertocat", user_type: str = "User", action: str = "created",
               number: int = PR_NUMBER, comment_id: int = 900001) -> dict[str, Any]:
    """An ``issue_comment`` on a pull request (GitHub has no such example: derived from an issue one)."""
    payload = example("issue_comment", action, with_installation=False)
    _with_installation(payload)
    issue = payload["issue"]
    repo_url = payload["repository"]["url"]
    html = payload["repository"]["html_url"]
    issue["number"] = number
    issue["pull_request"] = {
        "url": f"{repo_url}/pulls/{number}",
        "html_url": f"{html}/pull/{number}",
        "diff_url": f"{html}/pull/{number}.diff",
        "patch_url": f"{html}/pull/{number}.patch",
        "merged_at": None,
    }
    comment = payload["comment"]
    comment["id"] = comment_id
    comment["body"] = body
    for who in (comment["user"], payload["sender"]):
        who["login"] = user
        who["type"] = user_type
    return validate("issue_comment", payload)


def issue_comment(body: str, **kwargs: Any) -> dict[str, Any]:
    """A comment on a plain issue (not a PR)."""
    payload = pr_comment(body, **kwargs)
    del payload["issue"]["pull_request"]
    return validate("issue_comment", payload)


def installation(action: str) -> dict[str, Any]:
    return example("installation", action)


def ping() -> dict[str, Any]:
    return example("ping")
