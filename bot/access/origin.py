"""Cross-site requests to a preview host: refused before anyone's cookie is looked at.

Every preview host is a subdomain of one ``DEVENV_PREVIEW_DOMAIN``, so for a browser they are all
*one site*: the IDE host's ``SameSite=Lax`` cookie rides along on a WebSocket (or a POST) that a
page of *another* preview (another PR's app) opens to the IDE.  Neither the proxy nor VS Code's
server looks at ``Origin``, so the cookie alone would let PR 99's page drive PR 2's IDE as a
maintainer who had visited both.

So a WebSocket handshake or a request with a method other than GET/HEAD is refused when

* it carries an ``Origin`` that is not exactly the preview's own origin (scheme, host and port;
  ``null`` included), or
* the browser says it is ``Sec-Fetch-Site: cross-site`` or ``same-site`` (a sibling preview).

Plain GET/HEAD navigations stay open (a link from GitHub is cross-site).  A request without these
headers (not from a browser) is judged by its cookie as before.
"""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import urlsplit

from bot.access.hosts import PreviewTarget

__all__ = ["cross_site_refusal"]

_SAFE_METHODS = frozenset({"GET", "HEAD"})
_DEFAULT_PORTS = {"http": 80, "https": 443}
_FOREIGN_SITES = frozenset({"cross-site", "same-site"})


def _is_websocket(headers: Mapping[str, str]) -> bool:
    # nginx never passes Upgrade to its auth subrequest (a hop-by-hop header), but the handshake's
    # Sec-WebSocket-Key travels with the other request headers.
    return "websocket" in headers.get("Upgrade", "").lower() or "Sec-WebSocket-Key" in headers


def _original_method(headers: Mapping[str, str], method: str) -> str:
    """The method of the request being checked: nginx and Traefik each name it in a header."""
    return (headers.get("X-Original-Method") or headers.get("X-Forwarded-Method") or method).upper()


def _port(scheme: str, netloc: str) -> int | None:
    try:
        port = urlsplit(f"//{netloc}").port
    except ValueError:
        return None
    return port if port is not None else _DEFAULT_PORTS.get(scheme)


def _same_origin(origin: str, target: PreviewTarget) -> bool:
    """Whether ``origin`` is exactly ``scheme://host[:port]`` of the preview being asked for."""
    try:
        parts = urlsplit(origin)
        host = parts.hostname
    except ValueError:
        return False
    if parts.scheme != target.scheme or host != target.host or parts.path or parts.query or "@" in parts.netloc:
        return False
    return _port(parts.scheme, parts.netloc) == _port(target.scheme, target.netloc)


def cross_site_refusal(headers: Mapping[str, str], method: str, target: PreviewTarget) -> str | None:
    """Why this request (a WebSocket or an unsafe method) must not reach the preview, or None."""
    websocket = _is_websocket(headers)
    if not websocket and _original_method(headers, method) in _SAFE_METHODS:
        return None
    kind = "A WebSocket" if websocket else "A request that changes something"
    origin = headers.get("Origin")
    if origin is not None and not _same_origin(origin.strip(), target):
        return f"{kind} to this preview may only come from its own pages, not from {origin[:200]!r}."
    site = headers.get("Sec-Fetch-Site", "").strip().lower()
    if site in _FOREIGN_SITES:
        return f"{kind} to this preview may only come from its own pages (the browser says {site})."
    return None
