"""Secret masking: every line DevPod or the agent prints passes through a :class:`Masker`.

The runner masks each line before anything stores, parses or logs it, so a token that
DevPod echoes (a clone URL with credentials, a ``Bearer`` header in a debug line) never
reaches a log, a comment or a check run. A masker knows the secrets it was given (the
installation token, the agent's API key) and, as a second net, the shapes of GitHub
tokens and credentials in URLs and headers.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable

__all__ = ["Masker"]

_TOKEN_PATTERNS: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"github_pat_[A-Za-z0-9_]{20,}"), "***"),
    (re.compile(r"\bgh[pousr]_[A-Za-z0-9]{20,}"), "***"),
    (re.compile(r"(x-access-token:)[^@\s/]+(@)"), r"\1***\2"),
    (re.compile(r"(://[^/@\s:]+:)[^/@\s]+(@)"), r"\1***\2"),
    (re.compile(r"(\b[Bb]earer\s+)[A-Za-z0-9._~+/=-]+"), r"\1***"),
    (re.compile(r"(\b[Tt]oken\s+)[A-Za-z0-9._~+/=-]{20,}"), r"\1***"),
]


class Masker:
    """Replaces known secrets and GitHub token shapes with ``***``."""

    MIN_SECRET_LEN = 6
    #: The shortest beginning of a secret hidden at a line's end before the next line confirms it;
    #: shorter ones (at most 3 characters of a secret) stay, or every word ending would be suspect.
    MIN_FRAGMENT = 4

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._secrets: set[str] = set()
        self._regex: re.Pattern[str] | None = None
        for s in secrets:
            self.add(s)

    def add(self, secret: str | None) -> None:
        """Remember a secret (too-short values are ignored: they would mask ordinary text)."""
        if secret and len(secret) >= self.MIN_SECRET_LEN and secret not in self._secrets:
            self._secrets.add(secret)
            alternatives = sorted(self._secrets, key=len, reverse=True)
            self._regex = re.compile("|".join(re.escape(s) for s in alternatives))

    def mask(self, text: str) -> str:
        if self._regex is not None:
            text = self._regex.sub("***", text)
        for pattern, repl in _TOKEN_PATTERNS:
            text = pattern.sub(repl, text)
        return text

    __call__ = mask

    def lines(self) -> Callable[[str], str]:
        """A masker for the consecutive lines of one stream, which also hides a secret split across two.

        A line ending with the beginning of a secret (``MIN_FRAGMENT`` characters or more) has that end
        hidden; a line starting with the rest of a secret the previous line began has that start hidden.
        """
        previous = ""

        def mask_line(line: str) -> str:
            nonlocal previous
            head = self._rest_of_split(previous, line)
            tail = self._start_of_split(line[head:])
            previous = line
            middle = self.mask(line[head:len(line) - tail])
            return ("***" if head else "") + middle + ("***" if tail else "")

        return mask_line

    def _rest_of_split(self, previous: str, line: str) -> int:
        """How many characters at ``line``'s start finish a secret ``previous`` ended with the start of."""
        best = 0
        for secret in self._secrets:
            for k in range(1, len(secret)):
                if previous.endswith(secret[:k]) and line.startswith(secret[k:]):
                    best = max(best, len(secret) - k)
        return best

    def _start_of_split(self, text: str) -> int:
        """How many characters at ``text``'s end are the beginning of a secret (0 if fewer than MIN_FRAGMENT)."""
        best = 0
        for secret in self._secrets:
            for k in range(self.MIN_FRAGMENT, len(secret)):
                if text.endswith(secret[:k]):
                    best = max(best, k)
        return best
