"""The masker hides registered secrets and anything shaped like a GitHub token or URL credentials."""

from __future__ import annotations

import pytest

from bot.devpod import Masker
from tests.devpod_rig import TOKEN


@pytest.mark.parametrize(
    "text",
    [
        f"token {TOKEN} leaked",
        "ghp_" + "x" * 36,
        "github_pat_" + "y" * 60,
        "https://x-access-token:abcdef123@github.com/o/r",
        "Authorization: Bearer eyJhbGciOi.abc.def",
    ],
)
def test_known_token_shapes_are_masked(text):
    masked = Masker().mask(text)
    assert "***" in masked
    for secret in (TOKEN, "x" * 36, "y" * 60, "abcdef123", "eyJhbGciOi.abc.def"):
        assert secret not in masked


def test_registered_secrets_are_masked_but_short_ones_are_ignored():
    m = Masker(["s3cr3t-value", "ab"])
    assert m.mask("a s3cr3t-value and ab") == "a *** and ab"


def test_a_secret_split_across_two_lines_is_hidden_in_both():
    secret = "s3cr3t-value-0123456789"
    mask_line = Masker([secret]).lines()
    first, second = mask_line("cloning with s3cr3t-val"), mask_line("ue-0123456789 and more")
    assert (first, second) == ("cloning with ***", "*** and more")
    # a split leaving fewer than MIN_FRAGMENT characters on the first line still hides the rest
    mask_line = Masker([secret]).lines()
    assert [mask_line("ends in s3c"), mask_line("r3t-value-0123456789!")] == ["ends in s3c", "***!"]
    # ordinary lines around it are untouched
    assert mask_line("nothing here") == "nothing here"
