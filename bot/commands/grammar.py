"""The slash-command grammar: ``parse(comment_body) -> Command | Reply | Ignore``, with no I/O.

Design.  Like atlantis' ``CommentParser``, this module only reads text and
returns a value; handlers decide what to do with it.  Which lines of a comment
are commands at all (not in code, quotes or HTML comments) is decided by the
small Markdown model in :mod:`bot.commands.lexer`; the verbs and their help
texts are in :mod:`bot.commands.verbs`.  Here each command line is read: its
verb, its arguments (the quoted or fenced prompt of ``agent run``), and, when
it is wrong, a :class:`Reply` saying what to write instead, with a guess at the
command meant.

Only the first command line counts.  If more follow, the result is still the
first one, with ``ignored_extra`` saying how many were skipped so the bot can
tell the user; if the first one is wrong, its ``Reply`` is the whole answer.

``parse`` never raises for a comment body (property-tested with Hypothesis) and
runs in time linear in the body's length.  It raises ``ValueError`` only for a
bad *configuration* (the prefix or the prompt limit), which start-up catches.

The grammar, the multiple-commands rule and examples are in ``docs/commands.md``.
"""

from __future__ import annotations

import dataclasses
import difflib
import re
from dataclasses import dataclass
from typing import Final, Literal

from bot.commands.lexer import command_lines, fenced_block, is_blank, split_lines
from bot.commands.verbs import (
    LOGS_DEFAULT_LINES,
    LOGS_MAX_LINES,
    VERBS,
    agent_run_examples,
    code_span,
    extend_seconds,
    usage_markdown,
)
from bot.text import markdown

__all__ = [
    "Command",
    "Reply",
    "Ignore",
    "IGNORE",
    "parse",
    "validate_prefix",
    "escape_markdown",
]

ReplyKind = Literal["unknown_verb", "bad_arguments", "empty_prompt", "prompt_too_long", "usage"]


@dataclass(frozen=True, slots=True)
class Command:
    """A well-formed command: run ``verb`` (``prompt`` only for ``agent run``, ``lines`` only for ``logs``,
    ``seconds`` only for ``extend``, None there for the repository's default).

    ``line`` is the 1-based line of the comment it was on; ``ignored_extra`` is
    how many further command lines the comment held (they are not run).
    """

    verb: str
    prompt: str | None = None
    line: int = 1
    ignored_extra: int = 0
    lines: int | None = None
    seconds: int | None = None


@dataclass(frozen=True, slots=True)
class Reply:
    """The comment holds a command the bot cannot run; answer with ``message`` (Markdown).

    User text in ``message`` is already escaped.  ``suggestion`` is the command
    the user probably meant (plain text, e.g. ``/devenv recreate``), if any.
    """

    kind: ReplyKind
    message: str
    suggestion: str | None = None


@dataclass(frozen=True, slots=True)
class Ignore:
    """The comment holds no command for the bot.  All instances are equal; use ``IGNORE``."""


IGNORE: Final = Ignore()


def validate_prefix(prefix: str) -> str:
    """Return ``prefix`` if it can start a command (``/`` first, no whitespace), else raise ValueError.

    The same rule as ``DEVENV_COMMAND_PREFIX`` in ``bot.config``.
    """
    if not isinstance(prefix, str) or not prefix.startswith("/") or any(c.isspace() for c in prefix):
        raise ValueError(f"command prefix {prefix!r} must start with '/' and hold no whitespace")
    return prefix


escape_markdown = markdown.escape  # one implementation, shared with comments and check runs


# --- the grammar ----------------------------------------------------------------

_SIMPLE_VERBS = frozenset(v for v in VERBS if " " not in v) - {"logs", "extend"}
_HEADS = tuple(dict.fromkeys(v.split()[0] for v in VERBS))  # up, recreate, …, agent
_HINTS = {  # words people try, and the verb they are after
    "start": "up",
    "create": "up",
    "open": "up",
    "resume": "up",
    "rebuild": "recreate",
    "restart": "recreate",
    "destroy": "delete",
    "remove": "delete",
    "rm": "delete",
    "halt": "stop",
    "pause": "stop",
    "info": "status",
    "state": "status",
    "?": "help",
    "allow": "approve",
    "ok": "approve",
    "cancel": "agent stop",
    "ask": "agent run",
    "prompt": "agent run",
    "log": "logs",
    "tail": "logs",
    "output": "logs",
    "keep": "extend",
    "prolong": "extend",
    "snooze": "extend",
}
_AGENT_HINTS = {
    "cancel": "stop",
    "kill": "stop",
    "abort": "stop",
    "start": "run",
    "exec": "run",
    "ask": "run",
}
_QUOTES = {'"': '"', "'": "'", "\u201c": "\u201d"}  # “smart quotes” from phones and macOS


def _word(token: str) -> str:
    return token.lower() if token.isascii() else token


def _suggest_agent(word: str | None) -> str | None:
    if not word:
        return None
    word = _word(word)[:64]
    if word in _AGENT_HINTS:
        return "agent " + _AGENT_HINTS[word]
    close = difflib.get_close_matches(word, ("run", "stop"), n=1)
    return "agent " + close[0] if close else None


def _suggest(first: str, second: str | None) -> str | None:
    word = _word(first)[:64]
    if word in _HINTS:
        return _HINTS[word]
    spaced = re.sub(r"[-_]", " ", word)
    if spaced in VERBS:  # agent-run
        return spaced
    close = difflib.get_close_matches(word, _HEADS, n=1)
    if not close:
        return None
    if close[0] == "agent":
        return _suggest_agent(second)
    return close[0]


def _reply(kind: ReplyKind, message: str, prefix: str, suggestion: str | None = None) -> Reply:
    return Reply(kind, message, f"{prefix} {suggestion}" if suggestion else None)


def _parse_quoted(text: str) -> tuple[str, str] | None:
    """Split ``text`` (starting with a quote) into the unquoted prompt and what follows; None if unclosed."""
    close = _QUOTES[text[0]]
    if text[0] != '"':  # no escapes in single or curly quotes, as in a shell
        end = text.find(close, 1)
        return None if end < 0 else (text[1:end], text[end + 1 :])
    out = []
    index = 1
    while index < len(text):
        char = text[index]
        if char == "\\" and text[index + 1 : index + 2] in ('"', "\\"):
            out.append(text[index + 1])
            index += 2
            continue
        if char == '"':
            return "".join(out), text[index + 1 :]
        out.append(char)
        index += 1
    return None


def _parse_agent_run(
    arguments: str, lines: list[str], index: int, prefix: str, max_prompt_bytes: int
) -> Command | Reply:
    inline = arguments.strip()
    if inline[:1] in _QUOTES:
        quoted = _parse_quoted(inline)
        if quoted is None:
            return _reply(
                "bad_arguments",
                f"The prompt's opening quote {code_span(inline[0])} is never closed."
                " Close it on the same line, or leave the quotes out.\n\n" + agent_run_examples(prefix),
                prefix,
                "agent run",
            )
        inline, after = quoted
        if not is_blank(after.strip()):
            return _reply(
                "bad_arguments",
                f"There is text after the prompt's closing quote: {code_span(after.strip())}."
                " Quote the whole prompt, leave the quotes out, or use a code block.\n\n"
                + agent_run_examples(prefix),
                prefix,
                "agent run",
            )
    block = fenced_block(lines, index + 1)
    prompt = "\n".join(part for part in (inline, block) if part)
    if not prompt.strip():
        return _reply(
            "empty_prompt",
            f"{code_span(prefix + ' agent run')} needs a prompt.\n\n" + agent_run_examples(prefix),
            prefix,
            "agent run",
        )
    size = len(prompt.encode("utf-8", "surrogatepass"))
    if size > max_prompt_bytes:
        return _reply(
            "prompt_too_long",
            f"The prompt is {size:,} bytes long; the limit is {max_prompt_bytes:,} bytes (UTF-8)."
            " Shorten it, or point the agent at a file in the pull request instead.",
            prefix,
        )
    return Command("agent run", prompt, index + 1)



def _parse_simple(verb: str, arguments: str, index: int, prefix: str) -> Command | Reply:
    """A verb of one word, which takes no arguments."""
    if arguments.strip():
        return _reply(
            "bad_arguments",
            f"{code_span(prefix + ' ' + verb)} takes no arguments, but it is followed by"
            f" {code_span(arguments.strip())}. Write the command alone on its line.\n\n"
            + usage_markdown(prefix, (verb,)),
            prefix,
            verb,
        )
    return Command(verb, None, index + 1)


def _parse_logs(arguments: str, index: int, prefix: str) -> Command | Reply:
    """``logs`` alone, or with how many lines of each log (1 to the maximum)."""
    words = arguments.split()
    if not words:
        return Command("logs", None, index + 1, lines=LOGS_DEFAULT_LINES)
    count = words[0]
    if len(words) == 1 and count.isascii() and count.isdigit() and len(count) <= 6 and 1 <= int(count) <= LOGS_MAX_LINES:
        return Command("logs", None, index + 1, lines=int(count))
    if len(words) > 1:
        problem = f"takes at most one number, but it is followed by {code_span(arguments.strip())}."
    elif count.isascii() and count.isdigit():
        problem = f"shows 1 to {LOGS_MAX_LINES} lines of each log, not {code_span(count)}."
    else:
        problem = f"takes a number of lines, not {code_span(count)}."
    return _reply(
        "bad_arguments",
        f"{code_span(prefix + ' logs')} {problem} For example {code_span(prefix + ' logs 200')}.\n\n"
        + usage_markdown(prefix, ("logs",)),
        prefix,
        "logs",
    )


def _parse_extend(arguments: str, index: int, prefix: str) -> Command | Reply:
    """``extend`` alone (the repository's default), or with a duration such as ``4h``, ``90m``, ``1h30m``, ``2d``."""
    words = arguments.split()
    seconds = extend_seconds(words[0]) if len(words) == 1 else None
    if not words or seconds is not None:
        return Command("extend", None, index + 1, seconds=seconds)
    problem = (f"takes at most one duration, but it is followed by {code_span(arguments.strip())}." if len(words) > 1
               else f"takes a duration with its unit (m, h, d or w), not {code_span(words[0])}.")
    return _reply("bad_arguments", f"{code_span(prefix + ' extend')} {problem} For example"
                  f" {code_span(prefix + ' extend 4h')}.\n\n" + usage_markdown(prefix, ("extend",)), prefix, "extend")


def _parse_agent(arguments: str, lines: list[str], index: int, prefix: str, max_prompt_bytes: int) -> Command | Reply:
    """``agent`` and what follows it: ``run`` with a prompt, ``stop`` alone, or a reply."""
    parts = arguments.split(None, 1)
    sub = _word(parts[0]) if parts else None
    sub_arguments = parts[1] if len(parts) > 1 else ""
    if sub == "run":
        return _parse_agent_run(sub_arguments, lines, index, prefix, max_prompt_bytes)
    if sub == "stop" and not sub_arguments.strip():
        return Command("agent stop", None, index + 1)
    suggestion = "agent stop" if sub == "stop" else _suggest_agent(parts[0] if parts else None)
    if sub == "stop":
        problem = f"{code_span(prefix + ' agent stop')} takes no arguments."
    elif parts:
        problem = f"{code_span(prefix + ' agent')} knows no {code_span(parts[0])}."
    else:
        problem = f"{code_span(prefix + ' agent')} needs {code_span('run')} or {code_span('stop')}."
    hint = ""
    if suggestion and sub != "stop":
        hint = f" Did you mean {code_span(prefix + ' ' + suggestion)}?"
    return _reply(
        "bad_arguments",
        f"{problem}{hint}\n\n" + usage_markdown(prefix, ("agent run", "agent stop")),
        prefix,
        suggestion,
    )


def _unknown_verb(first: str, arguments: str, prefix: str) -> Reply:
    second = arguments.split(None, 1)[0] if arguments.strip() else None
    suggestion = _suggest(first, second)
    hint = f" Did you mean {code_span(prefix + ' ' + suggestion)}?" if suggestion else ""
    return _reply(
        "unknown_verb",
        f"{code_span(prefix + ' ' + first)} is not a command.{hint} These are the commands:\n\n"
        + usage_markdown(prefix),
        prefix,
        suggestion,
    )


def _parse_line(
    rest: str, lines: list[str], index: int, prefix: str, max_prompt_bytes: int
) -> Command | Reply:
    """Read the command line ``lines[index]``; ``rest`` is what follows the prefix on it."""
    words = rest.split(None, 1)
    if not words:
        return _reply(
            "usage",
            f"{code_span(prefix)} needs a command after it. These are the commands:\n\n"
            + usage_markdown(prefix),
            prefix,
            "help",
        )
    first = words[0]
    arguments = words[1] if len(words) > 1 else ""
    verb = _word(first)
    if verb in _SIMPLE_VERBS:
        return _parse_simple(verb, arguments, index, prefix)
    if verb == "agent":
        return _parse_agent(arguments, lines, index, prefix, max_prompt_bytes)
    if verb == "logs":
        return _parse_logs(arguments, index, prefix)
    if verb == "extend":
        return _parse_extend(arguments, index, prefix)
    return _unknown_verb(first, arguments, prefix)


def parse(
    comment_body: str | None, *, prefix: str = "/devenv", max_prompt_bytes: int = 16000
) -> Command | Reply | Ignore:
    """Read the slash command in a comment.

    Returns the first command line's :class:`Command`, a :class:`Reply` when
    that line is wrong (unknown verb, bad arguments, empty or too long prompt,
    the prefix alone), or :data:`IGNORE` when the comment has no command.
    Raises ``ValueError`` only for a bad ``prefix`` or ``max_prompt_bytes``.
    """
    validate_prefix(prefix)
    if type(max_prompt_bytes) is not int or max_prompt_bytes < 1:
        raise ValueError(f"max_prompt_bytes must be a positive integer, not {max_prompt_bytes!r}")
    if not isinstance(comment_body, str) or prefix.casefold() not in comment_body.casefold():
        return IGNORE
    lines = split_lines(comment_body)
    found = command_lines(lines, prefix)
    first = next(found, None)
    if first is None:
        return IGNORE
    index, rest = first
    result = _parse_line(rest, lines, index, prefix, max_prompt_bytes)
    if isinstance(result, Reply):
        return result
    extra = sum(1 for _ in found)
    return dataclasses.replace(result, ignored_extra=extra) if extra else result
