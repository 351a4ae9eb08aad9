"""Which lines of a comment are commands: a small model of how GitHub renders Markdown.

Design.  A comment is read line by line with a small model of GitHub's
Markdown (CommonMark plus GFM) that knows just enough block structure to tell
where a line would *render*:

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
end of the line (:func:`command_lines`).  Where the model and GitHub could
disagree (lists nesting fences, code inside quotes) it errs towards ignoring a
line: an ignored command costs the user a retry, a command run from someone's
quoted text or code sample costs much more.  Everything here runs in time
linear in the comment's length.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

__all__ = ["command_lines", "fenced_block", "is_blank", "split_lines"]

_NEWLINE = re.compile(r"\r\n|\r|\n")  # CommonMark's line endings, and no others
_HTML_RAW_BLOCK = re.compile(r"<(?:pre|script|style|textarea)(?:[ \t>]|\Z)", re.IGNORECASE)
_HTML_RAW_BLOCK_ENDS = ("</pre>", "</script>", "</style>", "</textarea>")
_HTML_COMMENT_ENDS = ("-->",)


def split_lines(text: str) -> list[str]:
    """``text`` cut at CommonMark's line endings (``\\r\\n``, ``\\r``, ``\\n``) and no others."""
    return _NEWLINE.split(text)


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


def is_blank(line: str) -> bool:
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
    return run >= length and is_blank(text[run:])


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


def command_lines(lines: list[str], prefix: str) -> Iterator[tuple[int, str]]:
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
        if is_blank(line):
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
            quoted = not is_blank(text.lstrip("> \t"))
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


def fenced_block(lines: list[str], index: int) -> str | None:
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

