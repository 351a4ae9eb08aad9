"""Preview host names and the addresses a sign-in may return to.

A preview host is exactly one DNS label under ``DEVENV_PREVIEW_DOMAIN``: ``code-<ws id>`` for the
IDE, ``<port>-<ws id>`` for an application port.  Return addresses (``rd=``) come from the
browser, so they are parsed strictly: only ``http(s)://<label>.<domain>[:port]/<path>``, no
userinfo, no fragment, no control characters or backslashes, and always sent back with the
configured preview scheme.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import NamedTuple
from urllib.parse import urlsplit

from bot.settings.access import AccessSettings

__all__ = ["HANDOFF_PATH", "IDE_PORT", "PreviewTarget", "parse_return_url", "preview_label", "safe_path",
           "split_label"]

IDE_PORT = "code"
HANDOFF_PATH = "/_devenv/handoff"
_LABEL = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
_PORT = re.compile(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?$")
_UNSAFE_IN_URL = re.compile(r"[\x00-\x20\x7f\\]")


class PreviewTarget(NamedTuple):
    scheme: str
    host: str  # lower-case host name, no port
    netloc: str  # as given (may carry a port)
    path: str  # path and query, starting with one "/"


def preview_label(host: str, domain: str) -> str | None:
    """``label`` if ``host`` is exactly ``<label>.<domain>``, else None."""
    suffix = "." + domain
    if not host.endswith(suffix):
        return None
    label = host[: -len(suffix)]
    return label if _LABEL.match(label) else None


def split_label(label: str, known: Callable[[str], bool]) -> tuple[str, str] | None:
    """``(port, ws id)`` from ``<port>-<ws id>``; port names may hold dashes, so the first split
    whose workspace is ``known`` wins (else the first well-formed one)."""
    first = None
    for i, ch in enumerate(label):
        if ch != "-" or i == 0:
            continue
        port, ws_id = label[:i], label[i + 1:]
        if not ws_id or not _PORT.match(port):
            continue
        if first is None:
            first = (port, ws_id)
        if known(ws_id):
            return port, ws_id
    return first


def safe_path(path: str) -> str | None:
    """``path`` if it is a plain absolute path (and query) on the same host, else None."""
    if not path:
        return "/"
    if (not path.startswith("/") or path.startswith("//") or _UNSAFE_IN_URL.search(path)
            or "#" in path or len(path) > 4096):
        return None
    return path


def parse_return_url(url: str, access: AccessSettings) -> PreviewTarget | None:
    """The preview page to return to, if ``url`` is one: refuses anything that is not
    ``http(s)://<label>.<domain>[:port]/<path>`` (no userinfo, no other scheme, one label deep).

    The result always uses the configured preview scheme (an ``http`` URL is upgraded).
    """
    if not url or len(url) > 4096 or _UNSAFE_IN_URL.search(url):
        return None
    try:
        parts = urlsplit(url)
        port = parts.port  # raises on a bad port
    except ValueError:
        return None
    # The scheme the proxy saw may be http behind a TLS-terminating load balancer (nginx builds
    # rd= from its own $scheme); the host is what matters, and the way back uses the configured scheme.
    if parts.scheme not in ("http", "https") or "@" in parts.netloc or parts.fragment:
        return None
    host = (parts.hostname or "").lower()
    if preview_label(host, access.preview_domain) is None:
        return None
    netloc = host if port is None else f"{host}:{port}"
    path = safe_path((parts.path or "/") + (f"?{parts.query}" if parts.query else ""))
    if path is None:
        return None
    return PreviewTarget(access.preview_scheme, host, netloc, path)
