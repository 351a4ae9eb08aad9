"""Escaping user-controlled text (logins, branch names, titles, prompts) for GitHub Markdown.

Nothing a user typed may mention people, open HTML, or start Markdown syntax
when the bot repeats it in a comment or a check run.
"""

from __future__ import annotations

import re

_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|~>])")
ZWJ = "\u200d"  # placed after '@' so GitHub does not turn it into a mention


def escape(text: object) -> str:
    """Escape ``text`` for inline use in Markdown: one line, no HTML, no mentions."""
    s = str(text)
    s = s.replace("\r\n", " ").replace("\n", " ").replace("\r", " ")
    s = s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    s = _SPECIAL.sub(r"\\\1", s)
    s = s.replace("@", "@" + ZWJ)
    return s


def inline_code(text: object) -> str:
    """Show ``text`` as inline code, whatever backticks it holds (CommonMark code spans)."""
    s = str(text).replace("\r\n", " ").replace("\n", " ").replace("\r", " ")
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
