"""The README's "Configuration" table, rendered from the table of variables.

``python -m bot.settings.readme`` rewrites the part of README.md between the two markers;
``tests/test_config.py`` fails when the README and :data:`bot.settings.variables.SECTIONS`
disagree, so a new variable cannot stay undocumented.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from bot.settings.reader import Var
from bot.settings.variables import SECTIONS

BEGIN = "<!-- settings table: rendered from bot/settings/variables.py by `python -m bot.settings.readme` -->"
END = "<!-- end of settings table -->"
README = Path(__file__).resolve().parents[2] / "README.md"


def default_cell(var: Var[Any]) -> str:
    """What the README shows as the default: the literal value, a description, or —."""
    if var.shown is not None:
        return var.shown
    return "—" if var.default is None else f"`{var.default}`"


def render() -> str:
    """The Markdown table, one row per variable, a bold row opening each section."""
    lines = [BEGIN, "| variable | default | meaning |", "|---|---|---|"]
    for title, variables in SECTIONS:
        lines.append(f"| **{title}** | | |")
        lines.extend(f"| `{var.name}` | {default_cell(var)} | {var.doc} |" for var in variables)
    lines.append(END)
    return "\n".join(lines)


def rendered_part(text: str) -> str:
    """The part of ``text`` between the markers, markers included."""
    start, end = text.find(BEGIN), text.find(END)
    if start < 0 or end < start:
        raise ValueError(f"the README has no settings table between {BEGIN!r} and {END!r}")
    return text[start:end + len(END)]


def rewrite(text: str) -> str:
    """``text`` with its settings table replaced by a fresh rendering."""
    return text.replace(rendered_part(text), render())


def main() -> int:
    text = README.read_text()
    new = rewrite(text)
    if new != text:
        README.write_text(new)
        print(f"rewrote the settings table in {README}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
