"""Escaping user-controlled text (logins, branch names, titles, prompts) for GitHub Markdown.

Nothing a user typed may mention people, open HTML, or start Markdown syntax
when the bot repeats it in a comment or a check run.
"""

from __future__ import annotations

import re

_LINE_BREAKS = re.compile(r"\r\n|[\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029]")
_ASCII_PUNCTUATION = frozenset("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~")
_ZWJ = "\u200d"
_ESCAPES = {c: "\\" + c for c in _ASCII_PUNCTUATION} | {
    "&": "&amp;",
    "<": "&lt;",
    ">": "&gt;",
    "@": "@" + _ZWJ,  # GitHub links (and notifies) @login and @org/team in rendered text
    "#": "\\#" + _ZWJ,  # nor may #123 cross-reference an issue
}
_ESCAPE_TABLE = str.maketrans(_ESCAPES)


def escape(text: object) -> str:
    """Make user text (a prompt, branch name, login, title) safe to show inline in GitHub Markdown.

    * Line breaks of any kind (``\\r\\n``, ``\\n``, ``\\r``, U+2028, …) become one
      space each, so the text cannot start a heading, list, quote or fence.
    * ``&``, ``<`` and ``>`` become HTML entities: no HTML, no autolinks.
    * Every other ASCII punctuation character is backslash-escaped, which
      CommonMark allows for all of them: no emphasis, links, images, code,
      tables, strike-through, math or HTML entities can begin.
    * ``@`` and ``#`` are followed by a zero-width joiner, so ``@someone`` does
      not mention (and notify) anyone and ``#123`` does not cross-reference an
      issue; backslashes alone do not stop that, GitHub looks at the rendered text.

    The result renders as the original text (line breaks aside).  It is meant
    for running text; inside a code span or block use the code syntax instead.
    """
    return _LINE_BREAKS.sub(" ", str(text)).translate(_ESCAPE_TABLE)


def inline_code(text: object) -> str:
    """Show ``text`` as inline code, whatever backticks it holds (CommonMark code spans)."""
    s = _LINE_BREAKS.sub(" ", str(text))
    longest = max((len(m) for m in re.findall(r"`+", s)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if s.startswith("`") or s.endswith("`") or not s.strip() else ""
    return f"{fence}{pad}{s}{pad}{fence}"


def truncate_bytes(text: str, limit: int, marker: str = "\n…(truncated)") -> str:
    """Cut ``text`` to at most ``limit`` UTF-8 bytes without splitting a character."""
    data = text.encode("utf-8")
    if len(data) <= limit:
        return text
    room = limit - len(marker.encode("utf-8"))
    return data[: max(0, room)].decode("utf-8", errors="ignore") + marker


def fenced(text: object, info: str = "text") -> str:
    """A fenced code block holding ``text`` verbatim, with a fence no line of it can close."""
    s = str(text)
    longest = max((len(m) for m in re.findall(r"`{3,}", s)), default=2)
    fence = "`" * (longest + 1)
    return f"{fence}{info}\n{s}\n{fence}"


def utc(timestamp: float | None) -> str:
    import datetime as dt

    if not timestamp:
        return "never"
    return dt.datetime.fromtimestamp(timestamp, dt.UTC).strftime("%Y-%m-%d %H:%M UTC")


def short_sha(sha: str | None) -> str:
    return (sha or "")[:7] or "none"


def duration(seconds: float | None) -> str:
    """``7200`` → "2 hours", ``90`` → "1 minute": for people, rounded down to the largest unit."""
    if seconds is None:
        return "never"
    for size, unit in ((86400, "day"), (3600, "hour"), (60, "minute")):
        if seconds >= size:
            n = int(seconds // size)
            return f"{n} {unit}{'s' if n != 1 else ''}"
    n = int(seconds)
    return f"{n} second{'s' if n != 1 else ''}"
