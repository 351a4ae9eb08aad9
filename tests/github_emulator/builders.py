"""Builders of GitHub API objects, each valid against the description's schema.

Each builder starts from :func:`openapi.skeleton_of` (every required property with a
placeholder) and overlays the values that matter.  GitHub's repository schema alone
requires 80 properties, most of them URL templates nobody reads; the placeholders
keep those schema-valid without pages of boilerplate.  The emulator validates every
response it serves, so a builder that drifts from the schema fails the test that
used it.
"""

from __future__ import annotations

import base64
import hashlib
import time
import zlib
from typing import Any

from .openapi import skeleton_of


def iso(ts: float) -> str:
    """GitHub's timestamp format: ``2011-01-26T19:01:12Z`` (UTC, no fraction)."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


def stable_id(text: str, base: int = 1_000_000) -> int:
    """A deterministic positive id for a login or name (GitHub ids are integers)."""
    return base + zlib.crc32(text.encode()) % 90_000_000


def node_id(kind: str, number: int) -> str:
    return base64.b64encode(f"0{len(kind)}:{kind}{number}".encode()).decode()


def git_blob_sha(content: bytes) -> str:
    """The SHA-1 git gives the blob: what the contents API returns as ``sha``."""
    return hashlib.sha1(b"blob %d\0" % len(content) + content).hexdigest()


class Builders:
    """Objects for one emulator, whose URLs point back at it (``api`` and ``web``)."""

    def __init__(self, api_url: str, web_url: str):
        self.api = api_url
        self.web = web_url

    # -- accounts ---------------------------------------------------------------

    def user(self, login: str, *, type: str | None = None, user_id: int | None = None) -> dict[str, Any]:
        """A ``simple-user``.  Logins ending in ``[bot]`` are ``type: Bot``."""
        kind = type or ("Bot" if login.endswith("[bot]") else "User")
        uid = user_id or stable_id(login)
        base = f"{self.api}/users/{login}"
        obj = skeleton_of("simple-user")
        obj.update(
            login=login,
            id=uid,
            node_id=node_id("User", uid),
            type=kind,
            site_admin=False,
            avatar_url=f"{self.web}/avatars/u/{uid}",
            gravatar_id="",
            url=base,
            html_url=f"{self.web}/{login}",
            followers_url=f"{base}/followers",
            following_url=f"{base}/following{{/other_user}}",
            gists_url=f"{base}/gists{{/gist_id}}",
            starred_url=f"{base}/starred{{/owner}}{{/repo}}",
            subscriptions_url=f"{base}/subscriptions",
            organizations_url=f"{base}/orgs",
            repos_url=f"{base}/repos",
            events_url=f"{base}/events{{/privacy}}",
            received_events_url=f"{base}/received_events",
        )
        return obj

    def private_user(self, login: str) -> dict[str, Any]:
        """``GET /user`` for a user-to-server (OAuth) token."""
        obj = skeleton_of("private-user")
        obj.update(self.user(login))
        # ``GET /user`` is a oneOf private-user/public-user told apart by ``user_view_type``.
        obj.update(name=login, created_at=iso(1_300_000_000), updated_at=iso(1_300_000_000),
                   user_view_type="private")
        return obj

    # -- the app ----------------------------------------------------------------

    def app(self, *, app_id: int, slug: str, name: str, owner: str, client_id: str,
            permissions: dict[str, str], events: list[str], external_url: str,
            installations_count: int) -> dict[str, Any]:
        obj = skeleton_of("integration")
        obj.update(
            id=app_id,
            slug=slug,
            node_id=node_id("Integration", app_id),
            client_id=client_id,
            owner=self.user(owner),
            name=name,
            description="",
            external_url=external_url,
            html_url=f"{self.web}/apps/{slug}",
            created_at=iso(1_600_000_000),
            updated_at=iso(1_600_000_000),
            permissions=dict(permissions),
            events=list(events),
            installations_count=installations_count,
        )
        return obj

    def installation(self, *, installation_id: int, account: str, app_id: int, app_slug: str,
                     permissions: dict[str, str], events: list[str],
                     repository_selection: str = "all") -> dict[str, Any]:
        """An ``installation``.

        Quirk: ``GET /app/installations`` inlines the schema with ``account: allOf
        [simple-user, enterprise]`` (``anyOf`` elsewhere), so the account also
        carries the enterprise's required ``name``, ``slug``, ``created_at``,
        ``updated_at`` to satisfy both.
        """
        account_obj = self.user(account)
        account_obj.update(name=account, slug=account.lower(), created_at=iso(1_300_000_000),
                           updated_at=iso(1_300_000_000))
        obj = skeleton_of("installation")
        obj.update(
            id=installation_id,
            account=account_obj,
            app_id=app_id,
            app_slug=app_slug,
            target_id=account_obj["id"],
            target_type=account_obj["type"],
            repository_selection=repository_selection,
            access_tokens_url=f"{self.api}/app/installations/{installation_id}/access_tokens",
            repositories_url=f"{self.api}/installation/repositories",
            html_url=f"{self.web}/settings/installations/{installation_id}",
            permissions=dict(permissions),
            events=list(events),
            created_at=iso(1_600_000_000),
            updated_at=iso(1_600_000_000),
            single_file_name=None,
            suspended_by=None,
            suspended_at=None,
        )
        return obj

    # -- repositories -------------------------------------------------------------

    def repository(self, *, owner: str, name: str, repo_id: int, private: bool,
                   default_branch: str, fork: bool = False, full: bool = False) -> dict[str, Any]:
        """A ``repository`` (``full=True``: a ``full-repository`` for ``GET /repos/{o}/{r}``)."""
        full_name = f"{owner}/{name}"
        api = f"{self.api}/repos/{full_name}"
        obj = skeleton_of("full-repository" if full else "repository")
        templates = {
            "archive_url": "/{archive_format}{/ref}", "assignees_url": "/assignees{/user}",
            "blobs_url": "/git/blobs{/sha}", "branches_url": "/branches{/branch}",
            "collaborators_url": "/collaborators{/collaborator}", "comments_url": "/comments{/number}",
            "commits_url": "/commits{/sha}", "compare_url": "/compare/{base}...{head}",
            "contents_url": "/contents/{+path}", "contributors_url": "/contributors",
            "deployments_url": "/deployments", "downloads_url": "/downloads", "events_url": "/events",
            "forks_url": "/forks", "git_commits_url": "/git/commits{/sha}",
            "git_refs_url": "/git/refs{/sha}", "git_tags_url": "/git/tags{/sha}",
            "hooks_url": "/hooks", "issue_comment_url": "/issues/comments{/number}",
            "issue_events_url": "/issues/events{/number}", "issues_url": "/issues{/number}",
            "keys_url": "/keys{/key_id}", "labels_url": "/labels{/name}", "languages_url": "/languages",
            "merges_url": "/merges", "milestones_url": "/milestones{/number}",
            "notifications_url": "/notifications{?since,all,participating}", "pulls_url": "/pulls{/number}",
            "releases_url": "/releases{/id}", "stargazers_url": "/stargazers",
            "statuses_url": "/statuses/{sha}", "subscribers_url": "/subscribers",
            "subscription_url": "/subscription", "tags_url": "/tags", "teams_url": "/teams",
            "trees_url": "/git/trees{/sha}",
        }
        obj.update({key: api + suffix for key, suffix in templates.items()})
        host = self.web.split("://", 1)[1]
        obj.update(
            id=repo_id,
            node_id=node_id("Repository", repo_id),
            name=name,
            full_name=full_name,
            owner=self.user(owner),
            private=private,
            visibility="private" if private else "public",
            fork=fork,
            url=api,
            html_url=f"{self.web}/{full_name}",
            clone_url=f"{self.web}/{full_name}.git",
            git_url=f"git://{host}/{full_name}.git",
            ssh_url=f"git@{host}:{full_name}.git",
            svn_url=f"{self.web}/{full_name}",
            default_branch=default_branch,
            description=None,
            homepage=None,
            language=None,
            mirror_url=None,
            license=None,
            has_issues=True,
            has_projects=True,
            has_wiki=True,
            has_downloads=True,
            created_at=iso(1_600_000_000),
            updated_at=iso(1_600_000_000),
            pushed_at=iso(1_600_000_000),
        )
        return obj

    # -- pull requests ------------------------------------------------------------

    def pull_request(self, *, repo: dict[str, Any], head_repo: dict[str, Any], pull: dict[str, Any]) -> dict[str, Any]:
        """A ``pull-request`` from the emulator's pull state (see ``State.pulls``)."""
        number = pull["number"]
        api = f"{repo['url']}/pulls/{number}"
        html = f"{repo['html_url']}/pull/{number}"
        user = self.user(pull["user"])
        obj = skeleton_of("pull-request")

        def side(ref: str, sha: str, side_repo: dict[str, Any]) -> dict[str, Any]:
            return {"label": f"{side_repo['owner']['login']}:{ref}", "ref": ref, "sha": sha,
                    "repo": side_repo, "user": side_repo["owner"]}

        obj.update(
            id=pull["id"],
            node_id=node_id("PullRequest", pull["id"]),
            number=number,
            state=pull["state"],
            draft=pull["draft"],
            locked=False,
            title=pull["title"],
            body=pull.get("body"),
            user=user,
            url=api,
            html_url=html,
            diff_url=f"{html}.diff",
            patch_url=f"{html}.patch",
            issue_url=f"{repo['url']}/issues/{number}",
            commits_url=f"{api}/commits",
            review_comments_url=f"{api}/comments",
            review_comment_url=f"{repo['url']}/pulls/comments{{/number}}",
            comments_url=f"{repo['url']}/issues/{number}/comments",
            statuses_url=f"{repo['url']}/statuses/{pull['head_sha']}",
            head=side(pull["head_ref"], pull["head_sha"], head_repo),
            base=side(pull["base_ref"], pull["base_sha"], repo),
            _links={name: {"href": href} for name, href in {
                "self": api, "html": html, "issue": f"{repo['url']}/issues/{number}",
                "comments": f"{repo['url']}/issues/{number}/comments",
                "review_comments": f"{api}/comments",
                "review_comment": f"{repo['url']}/pulls/comments{{/number}}",
                "commits": f"{api}/commits", "statuses": f"{repo['url']}/statuses/{pull['head_sha']}",
            }.items()},
            author_association=pull.get("author_association", "CONTRIBUTOR"),
            created_at=iso(pull["created_at"]),
            updated_at=iso(pull["created_at"]),
            merged=pull.get("merged", False),
            mergeable=True,
            mergeable_state="clean",
            maintainer_can_modify=head_repo["id"] != repo["id"],
            commits=1,
            additions=1,
            deletions=0,
            changed_files=1,
            comments=0,
            review_comments=0,
            labels=[],
        )
        return obj

    def pull_request_minimal(self, *, repo: dict[str, Any], head_repo: dict[str, Any], pull: dict[str, Any]) -> dict[str, Any]:
        """What a check run lists in ``pull_requests`` (only PRs of the same repository)."""
        def side(ref: str, sha: str, r: dict[str, Any]) -> dict[str, Any]:
            return {"ref": ref, "sha": sha, "repo": {"id": r["id"], "url": r["url"], "name": r["name"]}}

        return {"id": pull["id"], "number": pull["number"], "url": f"{repo['url']}/pulls/{pull['number']}",
                "head": side(pull["head_ref"], pull["head_sha"], head_repo),
                "base": side(pull["base_ref"], pull["base_sha"], repo)}

    # -- conversation ---------------------------------------------------------------

    def issue_comment(self, *, repo: dict[str, Any], issue_number: int, is_pull: bool, comment_id: int,
                      body: str, user: dict[str, Any], created_at: float, app: dict[str, Any] | None,
                      author_association: str = "NONE") -> dict[str, Any]:
        obj = skeleton_of("issue-comment")
        kind = "pull" if is_pull else "issues"
        obj.update(
            id=comment_id,
            node_id=node_id("IssueComment", comment_id),
            url=f"{repo['url']}/issues/comments/{comment_id}",
            html_url=f"{repo['html_url']}/{kind}/{issue_number}#issuecomment-{comment_id}",
            issue_url=f"{repo['url']}/issues/{issue_number}",
            body=body,
            user=user,
            created_at=iso(created_at),
            updated_at=iso(created_at),
            author_association=author_association,
            performed_via_github_app=app,
        )
        return obj

    def reaction(self, *, reaction_id: int, content: str, user: dict[str, Any], created_at: float) -> dict[str, Any]:
        return {"id": reaction_id, "node_id": node_id("Reaction", reaction_id), "user": user,
                "content": content, "created_at": iso(created_at)}

    # -- checks -----------------------------------------------------------------------

    def check_run(self, *, repo: dict[str, Any], run_id: int, suite_id: int, app: dict[str, Any],
                  fields: dict[str, Any], pull_requests: list[dict[str, Any]]) -> dict[str, Any]:
        """A ``check-run`` from the fields the app sent (already merged and defaulted)."""
        output = fields.get("output") or {}
        obj = skeleton_of("check-run")
        obj.update(
            id=run_id,
            node_id=node_id("CheckRun", run_id),
            head_sha=fields["head_sha"],
            name=fields["name"],
            external_id=fields.get("external_id", ""),
            url=f"{repo['url']}/check-runs/{run_id}",
            html_url=f"{repo['html_url']}/runs/{run_id}",
            details_url=fields.get("details_url", app["external_url"]),
            status=fields["status"],
            conclusion=fields.get("conclusion"),
            started_at=fields.get("started_at"),
            completed_at=fields.get("completed_at"),
            output={
                "title": output.get("title"),
                "summary": output.get("summary"),
                "text": output.get("text"),
                "annotations_count": fields.get("annotations_count", 0),
                "annotations_url": f"{repo['url']}/check-runs/{run_id}/annotations",
            },
            check_suite={"id": suite_id},
            app=app,
            pull_requests=pull_requests,
        )
        return obj

    # -- contents ---------------------------------------------------------------------

    def content_file(self, *, repo: dict[str, Any], path: str, ref: str, content: bytes) -> dict[str, Any]:
        """A ``content-file``: base64 with a newline every 60 characters, like GitHub."""
        encoded = base64.b64encode(content).decode()
        wrapped = "".join(encoded[i:i + 60] + "\n" for i in range(0, len(encoded), 60))
        sha = git_blob_sha(content)
        url = f"{repo['url']}/contents/{path}?ref={ref}"
        git_url = f"{repo['url']}/git/blobs/{sha}"
        html_url = f"{repo['html_url']}/blob/{ref}/{path}"
        return {
            "type": "file", "encoding": "base64", "size": len(content), "name": path.rsplit("/", 1)[-1],
            "path": path, "content": wrapped, "sha": sha, "url": url, "git_url": git_url,
            "html_url": html_url, "download_url": f"{self.web}/raw/{repo['full_name']}/{ref}/{path}",
            "_links": {"self": url, "git": git_url, "html": html_url},
        }
