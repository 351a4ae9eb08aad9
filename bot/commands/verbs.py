"""The slash-command verbs and the help texts that name them.

Design.  :data:`VERBS` is the one list of what the bot understands; the
grammar (:mod:`bot.commands.grammar`), the per-repository ``permissions``
(:mod:`bot.repo_settings`) and the help all read it, so a new verb is added
here once.  :func:`usage_markdown` renders the help list; user text shown in a
reply goes through :func:`code_span`, which keeps it inside one inline code
span whatever backticks it holds.
"""

from __future__ import annotations

import re
from types import MappingProxyType
from typing import Final

from bot.text import markdown

__all__ = ["EXTEND_MAX_SECONDS", "LOGS_DEFAULT_LINES", "LOGS_MAX_LINES", "SYNTAX", "USAGE", "VERBS",
           "agent_run_examples", "code_span", "extend_seconds", "usage_markdown"]

VERBS: Final[tuple[str, ...]] = (
    "up",
    "recreate",
    "reset",
    "stop",
    "delete",
    "status",
    "help",
    "approve",
    "agent run",
    "agent stop",
    "logs",
    "extend",
    "prebuild",
)

#: ``logs [lines]``: how many lines of each log a reply shows unless asked, and at most.
LOGS_DEFAULT_LINES: Final = 50
LOGS_MAX_LINES: Final = 500

#: ``extend [duration]``: the longest duration the grammar reads (a repository's ``extend.max`` is lower).
EXTEND_MAX_SECONDS: Final = 365 * 86400

_DURATION = re.compile(r"(?:[0-9]{1,6}[mhdw])+")
_DURATION_PART = re.compile(r"([0-9]+)([mhdw])")
_DURATION_UNITS: Final = {"m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def extend_seconds(word: str) -> int | None:
    """``extend``'s duration in seconds (``4h``, ``90m``, ``1h30m``, ``2d``: a unit is required), None if
    ``word`` is none or outside one minute to :data:`EXTEND_MAX_SECONDS`."""
    text = word.lower() if word.isascii() else word
    if not _DURATION.fullmatch(text):
        return None
    seconds = sum(int(n) * _DURATION_UNITS[unit] for n, unit in _DURATION_PART.findall(text))
    return seconds if 60 <= seconds <= EXTEND_MAX_SECONDS else None


#: What follows the prefix for each verb, as shown in help texts.
SYNTAX: Final = MappingProxyType({**{v: v for v in VERBS}, "agent run": 'agent run "<prompt>"'})

#: One line per verb saying what it does (Markdown-free, so it fits anywhere).
USAGE: Final = MappingProxyType(
    {
        "up": "Create this pull request's environment, or start it again if it is stopped.",
        "recreate": "Rebuild the environment's container; its files are kept.",
        "reset": (
            "Rebuild the environment from a fresh clone of the pull request's newest commit;"
            " its files are lost."
        ),
        "stop": "Stop the environment; its files are kept for the next up.",
        "delete": "Delete the environment and its files.",
        "status": "Show the environment's state and links.",
        "help": "Show this list of commands.",
        "approve": "Allow environments for this pull request (needed when its author may not start one).",
        "agent run": "Run the coding agent in the environment with this prompt.",
        "agent stop": "Stop the coding agent's current run.",
        "logs": (
            f"Show the end of the last DevPod operation's output and of the environment's container log:"
            f" {LOGS_DEFAULT_LINES} lines of each, or as many as the number after it (logs 200), at most"
            f" {LOGS_MAX_LINES}."
        ),
        "extend": (
            "Keep the environment longer: push back its idle stop (or, when stopped, its deletion) by the"
            " duration after it (extend 4h), or by the repository's default."
        ),
        "prebuild": "Build the prebuilt image of this pull request's base branch now (maintainers).",
    }
)


def code_span(text: str, limit: int = 60) -> str:
    """Show ``text`` as inline code, shortened to ``limit`` characters, whatever backticks it holds."""
    text = markdown._LINE_BREAKS.sub(" ", text)
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    ticks = "`" * (longest + 1)
    # CommonMark strips one space on each side when both are there, so pad when needed.
    pad = " " if text.startswith(("`", " ")) or text.endswith(("`", " ")) else ""
    return f"{ticks}{pad}{text}{pad}{ticks}"


def usage_markdown(prefix: str = "/devenv", verbs: tuple[str, ...] = VERBS) -> str:
    """A Markdown list of ``verbs`` with their syntax and what they do."""
    return "\n".join(f"- {code_span(f'{prefix} {SYNTAX[v]}')}: {USAGE[v]}" for v in verbs)


def agent_run_examples(prefix: str) -> str:
    """How to give ``agent run`` its prompt, inline or as a fenced block (Markdown)."""
    return (
        f"For example `{prefix} agent run \"Fix the failing test\"`, or, for a longer prompt,"
        " a fenced code block on the line right after the command:\n\n"
        "````markdown\n"
        f"{prefix} agent run\n"
        "```\n"
        "Explain why the build fails on Windows,\n"
        "then fix it.\n"
        "```\n"
        "````"
    )

