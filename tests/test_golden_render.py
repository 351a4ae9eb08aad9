"""Every golden comment and check-run text, rendered as GitHub renders it (issue 13 item 8).

The golden files pin the exact Markdown; this test pins what a reader sees. Each file goes through
cmark-gfm (GitHub's own Markdown engine, via the ``cmarkgfm`` bindings, with GitHub's extensions:
tables, autolinks, strikethrough) and the HTML is checked for what breaks silently on GitHub:
template syntax or ``None`` left in the text, a table whose rows do not match its header (GitHub
drops extra cells and pads missing ones), a table that did not parse at all (its pipes show as
text), an empty header row, and unbalanced ``<details>`` blocks. The checks themselves are shown
to catch each fault on broken samples, so they cannot pass vacuously.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
from cmarkgfm import github_flavored_markdown_to_html
from cmarkgfm.cmark import Options

GOLDEN = Path(__file__).with_name("golden")
FILES = sorted(GOLDEN.glob("*.md"))

_DELIMITER = re.compile(r"^\|?\s*:?-+:?\s*(\|\s*:?-+:?\s*)*\|?\s*$")
_TEMPLATE_LEFTOVERS = re.compile(r"\{\{|\}\}|\{%|%\}|\bNone\b|\bundefined\b")


def render(markdown: str) -> str:
    # UNSAFE keeps the raw HTML the bot writes on purpose (<details>, <!-- sticky marker -->), as GitHub does.
    return github_flavored_markdown_to_html(markdown, options=Options.CMARK_OPT_UNSAFE)


def cells(row: str) -> int:
    """The cells of one table row, counting pipes outside code spans and not escaped."""
    count, in_code, i = 0, False, 0
    text = row.strip()
    text = text[1:] if text.startswith("|") else text
    text = text[:-1] if text.endswith("|") and not text.endswith("\\|") else text
    while i < len(text):
        ch = text[i]
        if ch == "\\":
            i += 2
            continue
        if ch == "`":
            in_code = not in_code
        elif ch == "|" and not in_code:
            count += 1
        i += 1
    return count + 1


def table_blocks(markdown: str) -> list[list[str]]:
    """Runs of `|` lines whose second line is a delimiter row: what GFM should turn into tables."""
    lines, blocks, i = markdown.splitlines(), [], 0
    while i < len(lines):
        if lines[i].lstrip().startswith("|") and i + 1 < len(lines) and _DELIMITER.match(lines[i + 1].strip()):
            j = i + 2
            while j < len(lines) and lines[j].lstrip().startswith("|"):
                j += 1
            blocks.append(lines[i:j])
            i = j
        else:
            i += 1
    return blocks


class _Text(HTMLParser):
    """Text outside code, the header cells of each table, and the <details> balance."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.text: list[str] = []
        self.headers: list[list[str]] = []
        self.depth_code = 0
        self.in_th = False
        self.details = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("code", "pre"):
            self.depth_code += 1
        elif tag == "thead":
            self.headers.append([])
        elif tag == "th":
            self.in_th = True
            self.headers[-1].append("")
        elif tag == "details":
            self.details += 1

    def handle_endtag(self, tag: str) -> None:
        if tag in ("code", "pre"):
            self.depth_code -= 1
        elif tag == "th":
            self.in_th = False
        elif tag == "details":
            self.details -= 1

    def handle_data(self, data: str) -> None:
        if self.in_th and self.headers:
            self.headers[-1][-1] += data
        if self.depth_code == 0:
            self.text.append(data)


def problems(markdown: str) -> list[str]:
    """What a reader on GitHub would see broken in this Markdown (empty when nothing)."""
    found = []
    html = render(markdown)
    parsed = _Text()
    parsed.feed(html)
    text = "".join(parsed.text)
    if m := _TEMPLATE_LEFTOVERS.search(text):
        found.append(f"template leftover {m.group(0)!r} in the text")
    blocks = table_blocks(markdown)
    if html.count("<table>") != len(blocks):
        found.append(f"{len(blocks)} tables in the Markdown, {html.count('<table>')} rendered")
    for block in blocks:
        width = cells(block[0])
        for row in block[2:]:
            if cells(row) != width:
                found.append(f"row {row.strip()!r} has {cells(row)} cells, its header {width}")
    for line in text.splitlines():
        if line.lstrip().startswith("|"):
            found.append(f"pipes shown as text (a table that did not parse): {line.strip()!r}")
    for header in parsed.headers:
        if not any(h.strip() for h in header):
            found.append("a table with an empty header row")
    if parsed.details != 0 or markdown.count("<details") != markdown.count("</details>"):
        found.append("unbalanced <details> blocks")
    return found


def test_there_are_golden_files_for_the_comment_and_the_check_run():
    names = {f.stem for f in FILES}
    assert any(n.startswith("comment_") for n in names) and any(n.startswith("check_") for n in names)


@pytest.mark.parametrize("path", FILES, ids=[f.stem for f in FILES])
def test_every_golden_text_renders_cleanly_on_github(path):
    markdown = path.read_text()
    assert render(markdown).strip(), "renders to nothing"
    assert problems(markdown) == []


BROKEN = {
    "template leftover '{{'": "**State:** {{ state }}\n",
    "template leftover 'None'": "**Commit:** None\n",
    "cells, its header": "| Way in | How |\n|---|---|\n| SSH | `ssh x` | extra |\n",
    "did not parse": "| Way in | How |\n| SSH | `ssh x` |\n",
    "empty header row": "| | |\n|---|---|\n| SSH | `ssh x` |\n",
    "unbalanced <details>": "<details><summary>History</summary>\n\nx\n",
}


@pytest.mark.parametrize("fault", sorted(BROKEN))
def test_the_checks_catch_each_fault(fault):
    assert any(fault in p for p in problems(BROKEN[fault])), problems(BROKEN[fault])


def test_pipes_inside_code_or_escaped_do_not_count_as_cells():
    assert cells("| `a | b` | c \\| d |") == 2
    assert problems("| Comment | Does |\n|---|---|\n| `/devenv agent run \"a|b\"` | runs it |\n") == []
