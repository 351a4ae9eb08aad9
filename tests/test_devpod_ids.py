"""Names for DevPod and Kubernetes: workspace ids, the PR source, label values."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot import devpod

owners = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9-]{0,38}", fullmatch=True)
repos = st.from_regex(r"[A-Za-z0-9._-]{1,100}", fullmatch=True)
numbers = st.integers(min_value=1, max_value=10**9)


@given(owners, repos, numbers)
def test_a_workspace_id_always_passes_devpods_id_validation(owner, repo, number):
    ws = devpod.workspace_id(owner, repo, number)
    assert not re.search(r"[^a-z0-9\-]+", ws)  # CONTRACT §1.5
    assert 0 < len(ws) <= 48
    assert not ws.startswith("-") and not ws.endswith("-")
    assert ws == devpod.workspace_id(owner, repo, number)


@given(owners, repos, numbers, owners, repos, numbers)
def test_distinct_pull_requests_get_distinct_workspace_ids(o1, r1, n1, o2, r2, n2):
    if (o1.lower(), r1.lower(), n1) != (o2.lower(), r2.lower(), n2):
        assert devpod.workspace_id(o1, r1, n1) != devpod.workspace_id(o2, r2, n2)


def test_repos_that_sanitise_alike_still_get_distinct_ids():
    long = "a" * 60
    assert devpod.workspace_id("o", long + "x", 1) != devpod.workspace_id("o", long + "y", 1)
    assert devpod.workspace_id("o", "my_repo", 1) != devpod.workspace_id("o", "my.repo", 1)
    assert devpod.workspace_id("o", "my_repo", 1).startswith("my-repo-pr1-")


def test_a_workspace_id_ignores_github_name_case():
    assert devpod.workspace_id("Codertocat", "Hello-World", 1) == devpod.workspace_id("codertocat", "hello-world", 1)


def test_the_pr_source_uses_devpods_pull_ref_syntax():
    assert devpod.pr_source("https://github.com/", "Codertocat", "Hello-World", 7) == (
        "git:https://github.com/Codertocat/Hello-World@pull/7/head"
    )
    with pytest.raises(ValueError):
        devpod.pr_source("https://github.com", "evil@x", "r", 1)


@pytest.mark.parametrize(
    ("raw", "value"),
    [("Hello-World", "Hello-World"), ("feat/branch!", "feat-branch"), ("-x-", "x"), ("a" * 80, "a" * 63), ("", "")],
)
def test_label_values_are_made_valid_for_kubernetes(raw, value):
    assert devpod.label_value(raw) == value


@given(st.text())
def test_any_text_becomes_a_valid_label_value(text):
    assert re.fullmatch(r"([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?", devpod.label_value(text))
