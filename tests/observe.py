"""What a person would see on the PR in the GitHub emulator: the sticky comment, the check runs."""

from __future__ import annotations

from tests.payloads import PR_NUMBER

OWNER, REPO = "Codertocat", "Hello-World"


def sticky(github, number: int = PR_NUMBER) -> str:
    """The bot's one sticky comment on the PR (fails if there is none, or more than one)."""
    bodies = [c["body"] for c in github.comments(OWNER, REPO, number) if "devenv-bot:sticky" in c["body"]]
    assert len(bodies) == 1, f"expected one sticky comment, found {len(bodies)}"
    return bodies[0]


def devenv_runs(github, name: str = "devenv") -> list[dict]:
    """Check runs named ``name`` on the repository, oldest first."""
    return [c for c in github.check_runs(OWNER, REPO) if c["name"] == name]
