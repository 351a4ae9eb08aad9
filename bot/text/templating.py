"""Every word a human reads lives in ``templates/``; this renders it.

HTML pages are autoescaped.  Markdown templates (comments, check runs) are not
HTML-escaped by Jinja: user-controlled values must pass through the ``md``
filter (see :func:`bot.markdown.escape`), which the templates apply explicitly.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import jinja2

from bot.text import markdown


@lru_cache(maxsize=1)
def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("bot", "resources/templates"),  # package data (pyproject.toml)
        autoescape=jinja2.select_autoescape(enabled_extensions=("html",), default_for_string=False),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["md"] = markdown.escape
    env.filters["code"] = markdown.inline_code
    env.filters["fenced"] = markdown.fenced
    env.filters["utc"] = markdown.utc
    env.filters["sha"] = markdown.short_sha
    env.filters["duration"] = markdown.duration
    return env


def render(name: str, **values: Any) -> str:
    return environment().get_template(name).render(**values)
