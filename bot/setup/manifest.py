"""The App manifest and the public address it points GitHub at.

GitHub must reach the webhook URL in the manifest, so the address matters: ``DEVENV_PUBLIC_URL`` wins;
otherwise the address the browser used, where ``X-Forwarded-Proto``/``X-Forwarded-Host`` count only
when the request came from a proxy the operator trusts (``DEVENV_TRUSTED_PROXIES``): anyone else
could otherwise point the App's webhook at their own host. A loopback, unspecified or private
address cannot be reached from GitHub.com: the page says so before the operator registers.
"""

from __future__ import annotations

import importlib.resources
import ipaddress
from collections.abc import Sequence
from importlib.resources.abc import Traversable
from typing import Any
from urllib.parse import urlsplit

import yaml

APP_YML = importlib.resources.files("bot") / "resources" / "app.yml"  # package data (pyproject.toml)

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def load_manifest_template(path: Traversable = APP_YML) -> dict[str, Any]:
    return yaml.safe_load(path.read_text())


def _first(value: str | None) -> str:
    return (value or "").split(",")[0].strip()


def from_trusted_proxy(remote: str | None, trusted: Sequence[Network]) -> bool:
    try:
        address = ipaddress.ip_address(remote or "")
    except ValueError:
        return False
    return any(address in network for network in trusted)


def public_base(*, public_url: str | None, scheme: str, host: str, remote: str | None,
                forwarded_proto: str | None, forwarded_host: str | None, trusted: Sequence[Network]) -> str:
    """The base URL GitHub should use to reach this bot (no trailing slash)."""
    if public_url:
        return public_url.rstrip("/")
    if from_trusted_proxy(remote, trusted):
        proto = _first(forwarded_proto).lower()
        scheme = proto if proto in ("http", "https") else scheme
        host = _first(forwarded_host) or host
    return f"{scheme}://{host}"


def unreachable_reason(url: str, *, github_is_public: bool = True) -> str | None:
    """Why GitHub could not reach ``url`` (None when nothing is known against it). No DNS look-up.

    A GitHub Enterprise Server may sit on the same private network, so private addresses and local
    names only count against GitHub.com; loopback and 0.0.0.0 count against both.
    """
    host = (urlsplit(url).hostname or "").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return f"{host} is this machine's loopback name"
    if github_is_public and host.endswith((".local", ".internal", ".lan")):
        return f"{host} is a name only this network knows"
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return None
    if address.is_unspecified:
        return f"{host} means 'every address of this machine', not one GitHub can connect to"
    if address.is_loopback:
        return f"{host} is this machine's loopback address"
    if github_is_public and (address.is_private or address.is_link_local):
        return f"{host} is a private address"
    return None


def build_manifest(template: dict[str, Any], base: str, webhook_path: str) -> dict[str, Any]:
    manifest = dict(template)
    hooks = dict(manifest.get("hook_attributes") or {})
    hooks["url"] = base + webhook_path
    hooks.setdefault("active", True)
    manifest["hook_attributes"] = hooks
    manifest["url"] = manifest.get("url") or base
    manifest["redirect_url"] = base + "/setup/callback"
    manifest["callback_urls"] = [base + "/auth/callback"]
    manifest.setdefault("request_oauth_on_install", False)
    return manifest
