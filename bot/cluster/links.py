"""Browser links to a workspace: what the PR comment shows, and what the cluster proves exists.

Design. A :class:`Link` is computed from the settings alone (:func:`links_of`, used when the
objects are applied) or read back from the live Ingresses (:func:`live_links`, which gives a
link only for a route whose Service exists, so a half-deleted workspace shows none). Both
put the IDE first. The Ingress builder stores each link's URL and permission as annotations,
which is how :func:`live_links` finds them again.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import Any
from urllib.parse import quote

from bot.cluster.workspace import CODE_PORT_NAME, ExposedWorkspace
from bot.settings.exposure import ExposureSettings

__all__ = ["Link", "link_of", "links_of", "live_links"]


@dataclasses.dataclass(frozen=True)
class Link:
    """A browser link to one port of a workspace; ``permission`` is the GitHub role it needs."""

    name: str
    url: str
    permission: str


def link_of(settings: ExposureSettings, ws: ExposedWorkspace, port_name: str) -> Link:
    base = f"{settings.scheme}://{settings.host(port_name, ws.id)}/"
    if port_name == CODE_PORT_NAME:
        # The folder comes from the PR's devcontainer.json: percent-encode it so the URL stays one
        # opaque token wherever it is shown (a ``)`` would end a Markdown link).
        return Link(port_name, f"{base}?folder={quote(ws.folder, safe='/')}", settings.ide_permission)
    return Link(port_name, base, settings.app_permission)


def links_of(settings: ExposureSettings, ws: ExposedWorkspace) -> list[Link]:
    return [link_of(settings, ws, n) for n, _ in ws.ports]


def live_links(label_prefix: str, service_names: Iterable[str], ingresses: Iterable[dict[str, Any]]) -> list[Link]:
    """Links for the route Ingresses whose backends all exist in ``service_names``, IDE first."""
    p = label_prefix
    services = set(service_names)
    out: list[Link] = []
    for ing in ingresses:
        meta = ing["metadata"]
        ann, port = meta.get("annotations") or {}, (meta.get("labels") or {}).get(f"{p}/port")
        targets = {path["backend"]["service"]["name"] for rule in ing["spec"].get("rules") or []
                   for path in rule["http"]["paths"]}
        if port and ann.get(f"{p}/url") and targets <= services and targets:
            out.append(Link(port, ann[f"{p}/url"], ann.get(f"{p}/permission", "write")))
    out.sort(key=lambda link: (link.name != CODE_PORT_NAME, link.name))
    return out
