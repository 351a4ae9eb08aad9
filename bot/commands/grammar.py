"""The slash-command grammar: ``parse(comment_body) -> Command | Reply | Ignore``, with no I/O.

Design.  Like atlantis' ``CommentParser``, this module only reads text and
returns a value; handlers decide what to do with it.  A comment is read line by
line with a small model of GitHub's Markdown (CommonMark plus GFM) that knows
just enough block structure to tell where a line would *render*:

* fenced code blocks (```` ``` ```` or ``~~~``, indented at most 3 spaces; the
  closing fence uses the same character, is at least as long and has nothing
  after it but spaces; an unclosed fence runs to the end of the comment),
* indented code (4 or more columns of indentation, a tab counts to the next
  multiple of 4),
* block quotes (``>``, ``>>``, ``> >``) including their *lazy continuation*: a
  line right under a quoted line, with no empty line in between, renders inside
  the quote, so it is not a command either,
* HTML comments (``<!-- … -->``, as a block or inline within a paragraph, which
  ends at an empty line) and the raw ``<pre>``, ``<script>``, ``<style>`` and
  ``<textarea>`` blocks.

A command is a line outside all of these that starts (after at most 3 spaces)
with the prefix, matched case-insensitively and followed by whitespace or the
end of the line.  Where the model and GitHub could disagree (lists nesting
fences, code inside quotes) it errs towards ignoring a line: an ignored command
costs the user a retry, a command run from someone's quoted text or code sample
costs much more.

Only the first command line counts.  If more follow, the result is still the
first one, with ``ignored_extra`` saying how many were skipped so the bot can
tell the user; if the first one is wrong, its ``Reply`` is the whole answer.

``parse`` never raises for a comment body (property-tested with Hypothesis) and
runs in time linear in the body's length.  It raises ``ValueError`` only for a
bad *configuration* (the prefix or the prompt limit), which start-up catches.

The grammar, the multiple-commands rule and examples are in ``docs/commands.md``.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final, Literal

from bot.text import markdown

__all__ = [
    "VERBS",
    "SYNTAX",
    "USAGE",
    "Command",
    "Reply",
    "Ignore",
    "IGNORE",
    "parse",
    "validate_prefix",
    "usage_markdown",
    "escape_markdown",
]

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
)

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
    }
)

ReplyKind = Literal["unknown_verb", "bad_arguments", "empty_prompt", "prompt_too_long", "usage"]


@dataclass(frozen=True, slots=True)
class Command:
    """A well-formed command: run ``verb`` (``prompt`` only for ``agent run``).

    ``line`` is the 1-based line of the comment it was on; ``ignored_extra`` is
    how many further command lines the comment held (they are not run).
    """

    verb: str
    prompt: str | None = None
    line: int = 1
    ignored_extra: int = 0


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


# --- escaping -----------------------------------------------------------------

_LINE_BREAKS = markdown._LINE_BREAKS
escape_markdown = markdown.escape  # one implementation, shared with comments and check runs


def _code_span(text: str, limit: int = 60) -> str:
    """Show ``text`` as inline code, shortened to ``limit`` characters, whatever backticks it holds."""
    text = _LINE_BREAKS.sub(" ", text)
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    ticks = "`" * (longest + 1)
    # CommonMark strips one space on each side when both are there, so pad when needed.
    pad = " " if text.startswith(("`", " ")) or text.endswith(("`", " ")) else ""
    return f"{ticks}{pad}{text}{pad}{ticks}"


# --- help texts ---------------------------------------------------------------


def usage_markdown(prefix: str = "/devenv", verbs: tuple[str, ...] = VERBS) -> str:
    """A Markdown list of ``verbs`` with their syntax and what they do."""
    return "\n".join(f"- {_code_span(f'{prefix} {SYNTAX[v]}')}: {USAGE[v]}" for v in verbs)


def _agent_run_examples(prefix: str) -> str:
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


# --- the Markdown model ---------------------------------------------------------

_NEWLINE = re.compile(r"\r\n|\r|\n")  # CommonMark's line endings, and no others
_HTML_RAW_BLOCK = re.compile(r"<(?:pre|script|style|textarea)(?:[ \t>]|\Z)", re.IGNORECASE)
_HTML_RAW_BLOCK_ENDS = ("</pre>", "</script>", "</style>", "</textarea>")
_HTML_COMMENT_ENDS = ("-->",)


def _indent(line: str) -> tuple[int, int]:
    """Columns of leading spaces and tabs (counted up to 4) and where the text after them starts."""
    columns = 0
    index = 0
    for char in line:
        if char == " ":
            columns += 1
        elif char == "\t":
            columns += 4 - columns % 4
        else:
            break
        index += 1
        if columns >= 4:
            break
    return columns, index


def _is_blank(line: str) -> bool:
    return not line.strip(" \t")


def _fence_opener(text: str) -> tuple[str, int] | None:
    """``(char, length)`` if ``text`` (already unindented) opens a fenced code block."""
    char = text[:1]
    if char not in ("`", "~"):
        return None
    length = len(text) - len(text.lstrip(char))
    if length < 3:
        return None
    if char == "`" and "`" in text[length:]:  # ```a``` is inline code, not a fence
        return None
    return char, length


def _closes(line: str, fence: tuple[str, int]) -> bool:
    columns, start = _indent(line)
    if columns >= 4:
        return False
    text = line[start:]
    char, length = fence
    run = len(text) - len(text.lstrip(char))
    return run >= length and _is_blank(text[run:])


def _html_block_end(text: str) -> tuple[str, ...] | None:
    """The strings that end an HTML block starting at ``text``, for the kinds that hide commands."""
    if text.startswith("<!--"):
        return _HTML_COMMENT_ENDS
    if _HTML_RAW_BLOCK.match(text):
        return _HTML_RAW_BLOCK_ENDS
    return None


def _in_comment_after(text: str, in_comment: bool) -> bool:
    """Whether an inline HTML comment is still open at the end of ``text``."""
    position = 0
    while True:
        if in_comment:
            end = text.find("-->", position)
            if end < 0:
                return True
            position, in_comment = end + 3, False
        else:
            start = text.find("<!--", position)
            if start < 0:
                return False
            position, in_comment = start + 2, True  # +2: "<!-->" closes itself


def _command_lines(lines: list[str], prefix: str):
    """Yield ``(index, rest)`` for each line that renders as a paragraph starting with ``prefix``."""
    folded = prefix.casefold()
    size = len(prefix)
    fence: tuple[str, int] | None = None
    html_ends: tuple[str, ...] | None = None
    quoted = False  # the previous line is quoted text, so this one may continue it lazily
    paragraph = False  # the previous line is (top-level) paragraph text
    in_comment = False  # an inline <!-- is open in the current paragraph

    for index, line in enumerate(lines):
        if fence is not None:
            if _closes(line, fence):
                fence = None
            continue
        if html_ends is not None:
            lowered = line.lower()
            if any(end in lowered for end in html_ends):
                html_ends = None
            continue
        if _is_blank(line):
            quoted = paragraph = in_comment = False
            continue
        columns, start = _indent(line)
        if columns >= 4:  # indented code, or the continuation of a paragraph or quote
            if paragraph and not quoted:
                in_comment = _in_comment_after(line, in_comment)
            continue
        text = line[start:]

        opener = _fence_opener(text)
        if opener is not None:
            fence = opener
            quoted = paragraph = in_comment = False
            continue
        if text.startswith(">"):
            quoted = not _is_blank(text.lstrip("> \t"))
            paragraph = in_comment = False
            continue
        ends = _html_block_end(text)
        if ends is not None:
            lowered = text.lower()
            if not any(end in lowered for end in ends):
                html_ends = ends
            quoted = paragraph = in_comment = False
            continue
        if quoted:  # lazy continuation: renders inside the quote above
            continue

        hidden = in_comment
        paragraph = True
        in_comment = _in_comment_after(text, in_comment)
        if hidden:
            continue
        if text[:size].casefold() == folded and (len(text) == size or text[size].isspace()):
            yield index, text[size:]


def _fenced_block(lines: list[str], index: int) -> str | None:
    """The content of the fenced code block opening at ``lines[index]``, if one does."""
    if index >= len(lines):
        return None
    columns, start = _indent(lines[index])
    if columns >= 4:
        return None
    fence = _fence_opener(lines[index][start:])
    if fence is None:
        return None
    content = []
    for line in lines[index + 1 :]:
        if _closes(line, fence):
            break
        # CommonMark: as many spaces as the opening fence is indented come off each line.
        cut = len(line) - len(line.lstrip(" "))
        content.append(line[min(cut, columns) :])
    return "\n".join(content)


# --- the grammar ----------------------------------------------------------------

_SIMPLE_VERBS = frozenset(v for v in VERBS if " " not in v)
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
                f"The prompt's opening quote {_code_span(inline[0])} is never closed."
                " Close it on the same line, or leave the quotes out.\n\n" + _agent_run_examples(prefix),
                prefix,
                "agent run",
            )
        inline, after = quoted
        if not _is_blank(after.strip()):
            return _reply(
                "bad_arguments",
                f"There is text after the prompt's closing quote: {_code_span(after.strip())}."
                " Quote the whole prompt, leave the quotes out, or use a code block.\n\n"
                + _agent_run_examples(prefix),
                prefix,
                "agent run",
            )
    block = _fenced_block(lines, index + 1)
    prompt = "\n".join(part for part in (inline, block) if part)
    if not prompt.strip():
        return _reply(
            "empty_prompt",
            f"{_code_span(prefix + ' agent run')} needs a prompt.\n\n" + _agent_run_examples(prefix),
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


def _parse_line(
    rest: str, lines: list[str], index: int, prefix: str, max_prompt_bytes: int
) -> Command | Reply:
    words = rest.split(None, 1)
    if not words:
        return _reply(
            "usage",
            f"{_code_span(prefix)} needs a command after it. These are the commands:\n\n"
            + usage_markdown(prefix),
            prefix,
            "help",
        )
    first = words[0]
    arguments = words[1] if len(words) > 1 else ""
    verb = _word(first)

    if verb in _SIMPLE_VERBS:
        if arguments.strip():
            return _reply(
                "bad_arguments",
                f"{_code_span(prefix + ' ' + verb)} takes no arguments, but it is followed by"
                f" {_code_span(arguments.strip())}. Write the command alone on its line.\n\n"
                + usage_markdown(prefix, (verb,)),
                prefix,
                verb,
            )
        return Command(verb, None, index + 1)

    if verb == "agent":
        parts = arguments.split(None, 1)
        sub = _word(parts[0]) if parts else None
        sub_arguments = parts[1] if len(parts) > 1 else ""
        if sub == "run":
            return _parse_agent_run(sub_arguments, lines, index, prefix, max_prompt_bytes)
        if sub == "stop" and not sub_arguments.strip():
            return Command("agent stop", None, index + 1)
        suggestion = "agent stop" if sub == "stop" else _suggest_agent(parts[0] if parts else None)
        if sub == "stop":
            problem = f"{_code_span(prefix + ' agent stop')} takes no arguments."
        elif parts:
            problem = f"{_code_span(prefix + ' agent')} knows no {_code_span(parts[0])}."
        else:
            problem = f"{_code_span(prefix + ' agent')} needs {_code_span('run')} or {_code_span('stop')}."
        hint = ""
        if suggestion and sub != "stop":
            hint = f" Did you mean {_code_span(prefix + ' ' + suggestion)}?"
        return _reply(
            "bad_arguments",
            f"{problem}{hint}\n\n" + usage_markdown(prefix, ("agent run", "agent stop")),
            prefix,
            suggestion,
        )

    second = arguments.split(None, 1)[0] if arguments.strip() else None
    suggestion = _suggest(first, second)
    hint = f" Did you mean {_code_span(prefix + ' ' + suggestion)}?" if suggestion else ""
    return _reply(
        "unknown_verb",
        f"{_code_span(prefix + ' ' + first)} is not a command.{hint} These are the commands:\n\n"
        + usage_markdown(prefix),
        prefix,
        suggestion,
    )


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
    lines = _NEWLINE.split(comment_body)
    found = _command_lines(lines, prefix)
    first = next(found, None)
    if first is None:
        return IGNORE
    index, rest = first
    result = _parse_line(rest, lines, index, prefix, max_prompt_bytes)
    if isinstance(result, Reply):
        return result
    extra = sum(1 for _ in found)
    return Command(result.verb, result.prompt, result.line, extra) if extra else result
