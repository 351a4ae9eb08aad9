"""Listing a repository's pull requests, and GitHub's conditional requests (ETag / If-None-Match).

``GET /repos/{owner}/{repo}/pulls`` answers ``pull-request-simple`` items, newest first, paginated
(``state`` open|closed|all, default open). Like GitHub, the answer carries an ``ETag``; a request
whose ``If-None-Match`` names the current ETag gets ``304 Not Modified`` with no body, and a 304 is
not counted against the rate limit ("making a conditional request … does not count against your
primary rate limit if a 304 response is returned"). See
https://docs.github.com/en/rest/using-the-rest-api/best-practices-for-using-the-rest-api#use-conditional-requests-if-appropriate

:func:`conditional` applies that to any answer with an ``ETag`` header (the pipeline in
``server.py`` calls it), so other list endpoints may opt in by setting one.
"""

from __future__ import annotations

import hashlib
import json
from typing import TYPE_CHECKING, Any

from .openapi import load_description
from .rest import ApiError, Reply, paginate, route

if TYPE_CHECKING:
    from .server import GitHubEmulator


def _simple_fields() -> set[str]:
    return set(load_description()["components"]["schemas"]["pull-request-simple"]["properties"])


def etag_of(body: Any) -> str:
    """A weak ETag over the answer's JSON, as GitHub sends for lists."""
    return 'W/"' + hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:40] + '"'


@route("GET", "/repos/{owner}/{repo}/pulls")
async def list_pulls(emu: GitHubEmulator, req) -> Reply:
    state = req.query.get("state", "open")
    if state not in ("open", "closed", "all"):
        raise ApiError(422, "Validation Failed")
    fields = _simple_fields()
    pulls = sorted(req.repo.pulls.values(), key=lambda p: p["number"], reverse=True)
    items = [{k: v for k, v in emu.pull_object(req.repo, p).items() if k in fields}
             for p in pulls if state == "all" or p["state"] == state]
    chunk, headers = paginate(emu, req, items)
    return Reply(200, chunk, {**headers, "ETag": etag_of(chunk)})


def conditional(request_headers: Any, reply: Reply) -> Reply:
    """``304`` (no body, same ETag) when the request's ``If-None-Match`` names the answer's ETag."""
    etag = reply.headers.get("ETag")
    if reply.status != 200 or etag is None:
        return reply
    asked = [tag.strip() for tag in request_headers.get("If-None-Match", "").split(",")]
    if etag in asked or "*" in asked:
        return Reply(304, None, {"ETag": etag})
    return reply
