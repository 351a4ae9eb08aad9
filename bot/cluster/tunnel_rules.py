"""Pure rules of the Cloudflare Tunnel mode: which ingress rules and DNS records a workspace gets.

Design. A workspace's routes are ``{hostname: service URL}``: the IDE through the bot's
authenticating reverse proxy, app ports straight to the workspace Service (or through the proxy
too). :func:`ingress_rules` checks such a mapping before any API call: every host must parse back
(``ExposureSettings.parse_host``) to the workspace, and nothing may reach OpenVSCode (port 10800,
no authentication of its own, CONTRACT §6) except through the proxy.

A rule belongs to a workspace when its hostname parses back to that workspace's id
(:func:`owner`); every other rule (the bot's own host, an operator's wildcard, the final
catch-all) is copied through untouched by :func:`merge`. DNS records are tagged with the comment
``devenv-bot:<id>``, and :func:`is_our_record` deletes nothing that is not the bot's own.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlsplit

from bot.cluster.workspace import CODE_PORT, CODE_PORT_NAME, ExposedWorkspace, ExposureError
from bot.settings.cloudflare import CloudflareSettings
from bot.settings.exposure import ExposureSettings

__all__ = [
    "CATCH_ALL",
    "COMMENT_PREFIX",
    "ORIGIN_REQUEST",
    "check_service",
    "ingress_rules",
    "is_our_record",
    "merge",
    "normal_service",
    "owner",
    "record_body",
    "tunnel_routes",
]

#: cloudflared requires a last rule without hostname or path (FACTS §B "Catch-all rule").
CATCH_ALL: dict[str, Any] = {"service": "http_status:404"}
#: DNS record comments name the workspace; the orphan sweep and ``remove`` select on it.
COMMENT_PREFIX = "devenv-bot:"
#: originRequest of every rule the bot writes. ``connectTimeout`` is in seconds in the API
#: (cloudflared's default is 30 s): a stopped workspace then answers 502 quickly.
ORIGIN_REQUEST: dict[str, Any] = {"connectTimeout": 10}

_HOST = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)+$")
_WS_ID = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


def normal_service(url: str | None) -> str | None:
    return url.rstrip("/") if url else url


def check_service(var: str, url: str) -> str:
    """A cloudflared origin: http(s)://host[:port], no path (cloudflared refuses one), no credentials."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.path not in ("", "/") \
            or parts.query or parts.fragment or parts.username or parts.password:
        raise ValueError(f"{var} must be http(s)://host[:port] without a path, got {url!r}")
    parts.port  # noqa: B018  (raises ValueError on a bad port)
    return url


def _port_of(url: str) -> int:
    parts = urlsplit(url)
    return parts.port or (443 if parts.scheme == "https" else 80)


def tunnel_routes(exposure: ExposureSettings, cloudflare: CloudflareSettings,
                  ws: ExposedWorkspace) -> dict[str, str]:
    """``{hostname: service}`` for a workspace: the IDE through the bot's auth proxy, app ports
    to the workspace Service ``http://devenv-<id>.<ns>.svc:<port>`` (or to the proxy too with
    ``DEVENV_CLOUDFLARE_PROXY_PREVIEWS``). Raises :class:`ExposureError` without a proxy."""
    out: dict[str, str] = {}
    for name, port in ws.ports:
        host = exposure.host(name, ws.id)
        if name == CODE_PORT_NAME or cloudflare.proxy_previews:
            if not cloudflare.auth_proxy:
                raise ExposureError("refusing to publish the IDE through the Cloudflare Tunnel without the bot's "
                                    "auth proxy in front of it (OpenVSCode has no authentication of its own): "
                                    "set DEVENV_CLOUDFLARE_AUTH_PROXY")
            out[host] = cloudflare.auth_proxy
        else:
            out[host] = f"http://{ws.service_name}.{exposure.namespace}.svc:{port}"
    return out


def _rule(exposure: ExposureSettings, proxy: str | None, ws_id: str, host: Any, service: str) -> dict[str, Any]:
    if not isinstance(host, str) or not _HOST.match(host) or len(host) > 253:
        raise ExposureError(f"invalid hostname {host!r} (no ports, no wildcards, lower case)")
    parsed = exposure.parse_host(host)
    if parsed is None or parsed[1] != ws_id:
        raise ExposureError(f"{host} is not a preview host of workspace {ws_id} under {exposure.domain}")
    try:
        check_service("service", service)
    except ValueError as e:
        raise ExposureError(f"{host}: {e}") from None
    service = service.rstrip("/")
    is_ide = parsed[0] == CODE_PORT_NAME or _port_of(service) == CODE_PORT
    if is_ide and service != proxy:
        raise ExposureError(
            f"refusing to publish the IDE ({host} → {service}) through the tunnel directly: OpenVSCode has "
            f"no authentication of its own. Route it to the bot's auth proxy, DEVENV_CLOUDFLARE_AUTH_PROXY"
            + ("" if proxy else " (unset)"))
    return {"hostname": host, "service": service, "originRequest": dict(ORIGIN_REQUEST)}


def ingress_rules(exposure: ExposureSettings, auth_proxy: str | None, ws_id: str,
                  routes: Mapping[str, str]) -> list[dict[str, Any]]:
    """The tunnel's ingress rules for ``routes``, sorted by host; raises :class:`ExposureError`
    for a bad workspace id, a host that is not the workspace's, or an IDE not behind the proxy."""
    if not ws_id or not _WS_ID.match(ws_id):
        raise ExposureError(f"invalid workspace id {ws_id!r}")
    proxy = normal_service(auth_proxy)
    return [_rule(exposure, proxy, ws_id, host, service) for host, service in sorted(routes.items())]


def owner(exposure: ExposureSettings, rule: Mapping[str, Any]) -> str | None:
    """The workspace id a rule belongs to, or None for rules the bot does not own."""
    host = rule.get("hostname")
    if not isinstance(host, str) or host.startswith("*"):
        return None
    parsed = exposure.parse_host(host)
    return parsed[1] if parsed else None


def is_catch_all(rule: Mapping[str, Any]) -> bool:
    return not rule.get("hostname") and not rule.get("path")


def merge(exposure: ExposureSettings, ingress: list[dict[str, Any]], rules: list[dict[str, Any]],
          drop: Callable[[str], bool]) -> list[dict[str, Any]]:
    """Drop the rules whose owner ``drop`` selects and put ``rules`` where the first dropped
    one was, else before the first wildcard or catch-all rule (first match wins, so a
    ``*.<domain>`` rule must not shadow them); the catch-all stays last."""
    kept: list[dict[str, Any]] = []
    at: int | None = None
    for rule in ingress:
        ws_id = owner(exposure, rule)
        if ws_id is not None and drop(ws_id):
            at = len(kept) if at is None else at
        else:
            kept.append(rule)
    if at is None:
        at = next((i for i, r in enumerate(kept)
                   if is_catch_all(r) or str(r.get("hostname", "")).startswith("*")), len(kept))
    out = kept[:at] + rules + kept[at:]
    if not out or not is_catch_all(out[-1]):
        out.append(dict(CATCH_ALL))
    return out


def record_body(cname_target: str, ws_id: str, host: str) -> dict[str, Any]:
    """The proxied CNAME of ``host``, tagged with its workspace."""
    return {"type": "CNAME", "name": host, "content": cname_target, "proxied": True, "ttl": 1,
            "comment": COMMENT_PREFIX + ws_id}


def is_our_record(exposure: ExposureSettings, cname_target: str, record: Mapping[str, Any],
                  ws_ids: Callable[[str], bool]) -> bool:
    """A record this bot made for a selected workspace: tagged, a host of our domain that
    parses back to the same id, pointing at our tunnel. Anything else is never deleted."""
    comment = str(record.get("comment") or "")
    if not comment.startswith(COMMENT_PREFIX):
        return False
    ws_id = comment[len(COMMENT_PREFIX):]
    parsed = exposure.parse_host(str(record.get("name") or ""))
    return (parsed is not None and parsed[1] == ws_id and ws_ids(ws_id)
            and record.get("content") == cname_target)
