"""Structured logging that carries the delivery, repository and PR, and never a secret.

Context travels in :mod:`contextvars`, so a background task started for a
delivery logs that delivery's id without passing it around.  Every record is
passed through :class:`Redactor`, which blanks registered secrets (the webhook
secret, installation tokens as they are minted, the private key) and anything
shaped like a GitHub token, whatever the code that logged it forgot.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import re
import sys
import time
from collections.abc import Iterator
from typing import Any

delivery_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("delivery", default=None)
repo_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("repo", default=None)
pr_var: contextvars.ContextVar[int | None] = contextvars.ContextVar("pr", default=None)
event_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("event", default=None)

# Token shapes GitHub documents (ghs_ installation, ghu_/ghr_ user, ghp_/github_pat_ personal),
# JWTs, and credentials embedded in URLs.
TOKEN_PATTERNS = re.compile(
    r"(gh[pousr]_[A-Za-z0-9_]{16,}|github_pat_[A-Za-z0-9_]{20,}"
    r"|eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}"
    r"|(?<=://)[^/\s:@]+:[^/\s@]+(?=@)"
    r"|-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?-----END [A-Z ]*PRIVATE KEY-----)"
)


class Redactor:
    """Replaces known secrets and token-shaped strings with ``***``."""

    def __init__(self) -> None:
        self._secrets: set[str] = set()

    def add(self, secret: str | None) -> None:
        if secret and len(secret) >= 6:
            self._secrets.add(secret)
            for line in secret.splitlines():
                line = line.strip()
                if len(line) >= 16 and not line.startswith("-----"):  # PEM body lines, not its frame
                    self._secrets.add(line)

    def __call__(self, text: str) -> str:
        text = TOKEN_PATTERNS.sub("***", text)
        for s in sorted(self._secrets, key=len, reverse=True):
            if s in text:
                text = text.replace(s, "***")
        return text


redactor = Redactor()


@contextlib.contextmanager
def context(*, delivery: str | None = None, repo: str | None = None, pr: int | None = None,
            event: str | None = None) -> Iterator[None]:
    """Set log context for the block (and the tasks it starts)."""
    tokens: list[tuple[contextvars.ContextVar[Any], contextvars.Token[Any]]] = []
    values: tuple[tuple[contextvars.ContextVar[Any], object], ...] = (
        (delivery_var, delivery), (repo_var, repo), (pr_var, pr), (event_var, event))
    for var, value in values:
        if value is not None:
            tokens.append((var, var.set(value)))
    try:
        yield
    finally:
        for var, token in reversed(tokens):
            var.reset(token)


def _context_fields() -> dict[str, object]:
    fields: dict[str, object] = {}
    for name, var in (("delivery", delivery_var), ("event", event_var), ("repo", repo_var), ("pr", pr_var)):
        value = var.get()
        if value is not None:
            fields[name] = value
    return fields


class _Base(logging.Formatter):
    def message_of(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        if record.exc_info:
            message = f"{message}\n{self.formatException(record.exc_info)}"
        return redactor(message)


class JSONFormatter(_Base):
    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, object] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": self.message_of(record),
        }
        doc.update(_context_fields())
        extra = getattr(record, "fields", None)
        if isinstance(extra, dict):
            doc.update({k: redactor(v) if isinstance(v, str) else v for k, v in extra.items()})
        return json.dumps(doc, ensure_ascii=False, default=str)


class HumanFormatter(_Base):
    def format(self, record: logging.LogRecord) -> str:
        ctx = " ".join(f"{k}={v}" for k, v in _context_fields().items())
        extra = getattr(record, "fields", None)
        if isinstance(extra, dict):
            ctx = " ".join(filter(None, [ctx, " ".join(f"{k}={v}" for k, v in extra.items())]))
        stamp = time.strftime("%H:%M:%S", time.localtime(record.created))
        line = f"{stamp} {record.levelname:<7} {record.name}: {self.message_of(record)}"
        return redactor(f"{line} [{ctx}]") if ctx else line


def setup(level: str = "info", fmt: str = "human", stream=None) -> None:
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JSONFormatter() if fmt == "json" else HumanFormatter())
    root = logging.getLogger()
    for h in list(root.handlers):
        if getattr(h, "_devenv", False):
            root.removeHandler(h)
    handler._devenv = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level.upper())
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
