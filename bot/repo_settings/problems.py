"""How problems in ``.github/devenv.yml`` are worded: values shown short, hints, and the PR comment.

Design.  Every problem names where it is and what to write instead, in plain
text; values from the file are never shown whole (:func:`show` gives a short,
single-line description), and YAML 1.1's surprises (an unquoted ``on`` or
``no`` is a boolean) get a hint.  :func:`render_problems` turns the list into
the Markdown of a PR comment, escaping it there, at the one place it becomes
Markdown.
"""

from __future__ import annotations

import datetime as dt
import difflib
from typing import Any, Final

from bot.repo_settings.schema import DOCS_URL, SETTINGS_PATH
from bot.text import markdown

__all__ = ["BOOL_HINT_FALSE", "BOOL_HINT_TRUE", "SHOW_LIMIT", "bool_hint", "render_problems", "show", "suggest"]

SHOW_LIMIT: Final = 60
BOOL_HINT_TRUE = "YAML 1.1 reads an unquoted on, yes or true as the boolean true; quote it to mean the word"
BOOL_HINT_FALSE = "YAML 1.1 reads an unquoted off, no or false as the boolean false; quote it to mean the word"


def show(value: Any) -> str:
    """A short, single-line description of a value from the file; never its full (maybe huge) repr."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        text = str(value)
        return text if len(text) <= SHOW_LIMIT else text[: SHOW_LIMIT - 1] + "…"
    if isinstance(value, str):
        flat = markdown._LINE_BREAKS.sub(" ", value)
        if len(flat) > SHOW_LIMIT:
            flat = flat[: SHOW_LIMIT - 1] + "…"
        return repr(flat)
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, dt.datetime):
        return "a timestamp"
    if isinstance(value, dt.date):
        return "a date"
    if isinstance(value, bytes):
        return "binary data"
    if isinstance(value, set):
        return "a set"
    return f"a {type(value).__name__}"


def bool_hint(value: Any) -> str:
    if value is True:
        return f" ({BOOL_HINT_TRUE})"
    if value is False:
        return f" ({BOOL_HINT_FALSE})"
    return ""


def suggest(word: Any, choices: tuple[str, ...] | list[str]) -> str:
    if not isinstance(word, str):
        return ""
    probe = word[:100].strip().lower().replace("-", "_")
    spaced = probe.replace("_", " ")
    for candidate in (probe, spaced):
        if candidate in choices and candidate != word:
            return f"; did you mean {candidate}?"
    close = difflib.get_close_matches(probe, choices, n=1, cutoff=0.6)
    return f"; did you mean {close[0]}?" if close else ""


_RENDER_LIMIT: Final = 30


def render_problems(problems: list[str], *, base_sha: str | None = None, docs_url: str = DOCS_URL) -> str:
    """Markdown for a PR comment listing ``problems`` (plain text, escaped here) and where to read more."""
    commit = f" at {markdown.inline_code(base_sha[:7])}" if base_sha else ""
    lines = [
        f"**{markdown.inline_code(SETTINGS_PATH)} has {'a problem' if len(problems) == 1 else 'problems'}**,"
        " so this pull request uses the default settings until it is fixed.",
        "",
        f"The file is read from the pull request's base branch{commit}, never from the pull request itself:"
        " fix it there (a change in this pull request takes effect once it is merged).",
        "",
    ]
    lines += [f"- {markdown.escape(problem)}" for problem in problems[:_RENDER_LIMIT]]
    if len(problems) > _RENDER_LIMIT:
        lines.append(f"- …and {len(problems) - _RENDER_LIMIT} more")
    lines += ["", f"Every setting is described in [the settings reference]({docs_url})."]
    return "\n".join(lines)
