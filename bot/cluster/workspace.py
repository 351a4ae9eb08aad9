"""What a workspace exposes: its fixed ports and paths, and the validated :class:`ExposedWorkspace`.

Design. DevPod creates the workspace pod and nothing else (CONTRACT §5.2): no Service, no
Ingress. OpenVSCode listens on ``0.0.0.0:10800`` inside the pod **without any token**
(CONTRACT §6), so whoever reaches that port owns a shell in the workspace. This package puts
it, and the app ports a PR declares, behind the bot's forward auth. Everything starts from
:func:`exposed_workspace`, which checks what a PR asks to expose once, so that the builders
downstream (:mod:`bot.cluster.manifests`, :mod:`bot.cluster.routers`, the Cloudflare rules)
can trust it.

Names (ids are ≤ 48 characters; CONTRACT §1.5): the Service is ``devenv-<id>`` (a DNS-1035
label even when the id starts with a digit); one Ingress per port, ``devenv-<id>-<port>``;
``devenv-<id>--handoff`` for the ``/_devenv/`` path; ``devenv-<id>--auth`` for Traefik's
Middleware. Port names contain no ``-`` (``[a-z][a-z0-9]*``), so ``--`` never comes from a
port and a host splits back into ``(port, id)`` unambiguously
(:meth:`bot.cluster.exposure.ExposureSettings.parse_host`).

Every object is labelled ``app.kubernetes.io/managed-by=devenv-bot`` and
``<prefix>/workspace=<id>`` (plus ``repo`` and ``pr``), which is how the applier finds what to
delete. One bot per namespace: two bots sharing a namespace would sweep each other's objects
as orphans.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping

from bot.devpod import label_value
from bot.settings.exposure import ExposureSettings

__all__ = [
    "CODE_PORT",
    "CODE_PORT_NAME",
    "HANDOFF_PATH",
    "ID_MAX_LEN",
    "MANAGED_BY",
    "UNSAFE_URL_CHARS",
    "ExposedWorkspace",
    "ExposureError",
    "exposed_workspace",
]

#: OpenVSCode's hard-coded port inside the workspace pod (CONTRACT §6).
CODE_PORT = 10800
CODE_PORT_NAME = "code"
#: Path on every preview host served by the bot itself, without auth (one-time-code handoff).
HANDOFF_PATH = "/_devenv/"
MANAGED_BY = ("app.kubernetes.io/managed-by", "devenv-bot")
ID_MAX_LEN = 48

_PORT_NAME = re.compile(r"^[a-z][a-z0-9]*$")
_WS_ID = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
#: Characters that must never reach an annotation value (the ingress-nginx annotation
#: injection CVEs, e.g. CVE-2025-24514 through ``auth-url``, used quotes, braces, ``;``
#: and newlines). The bot uses no nginx variables, so ``$`` is refused too.
UNSAFE_URL_CHARS = re.compile(r"[\s\"'`\\;{}$<>|^]")


class ExposureError(Exception):
    """The manifests would be wrong or unsafe (e.g. an IDE without forward auth)."""


@dataclasses.dataclass(frozen=True)
class ExposedWorkspace:
    """What one workspace exposes: validated ports (``code`` first) and the labels of its objects."""

    id: str
    ports: tuple[tuple[str, int], ...]
    labels: Mapping[str, str]
    folder: str

    @property
    def service_name(self) -> str:
        return f"devenv-{self.id}"

    def ingress_name(self, port_name: str) -> str:
        return f"devenv-{self.id}-{port_name}"

    @property
    def handoff_name(self) -> str:
        return f"devenv-{self.id}--handoff"

    @property
    def middleware_name(self) -> str:
        return f"devenv-{self.id}--auth"


def _owned_labels(settings: ExposureSettings, ws_id: str, labels: Mapping[str, str] | None) -> dict[str, str]:
    out = {MANAGED_BY[0]: MANAGED_BY[1]}
    for key, value in (labels or {}).items():
        full = key if "/" in key else f"{settings.label_prefix}/{key}"
        out[full] = label_value(str(value))
    out[f"{settings.label_prefix}/workspace"] = ws_id
    return out


def _app_ports(ports: Mapping[str, int] | None, room: int) -> list[tuple[str, int]]:
    """The app ports, sorted by name; raises :class:`ExposureError` for a bad or repeated one."""
    seen_numbers = {CODE_PORT: CODE_PORT_NAME}
    app: list[tuple[str, int]] = []
    for name, number in sorted((ports or {}).items()):
        if name == CODE_PORT_NAME:
            raise ExposureError(f"port name {CODE_PORT_NAME!r} is reserved for the IDE")
        if not _PORT_NAME.match(name) or len(name) > room:
            raise ExposureError(f"port name {name!r} must be a lower-case letter then letters or digits, "
                                f"at most {room} characters")
        if isinstance(number, bool) or not isinstance(number, int) or not 1 <= number <= 65535:
            raise ExposureError(f"port {name!r} must be a number 1-65535, got {number!r}")
        if number in seen_numbers:
            raise ExposureError(f"port {number} is exposed twice ({seen_numbers[number]!r} and {name!r})")
        seen_numbers[number] = name
        app.append((name, number))
    return app


def exposed_workspace(settings: ExposureSettings, ws_id: str, labels: Mapping[str, str] | None = None,
                      ports: Mapping[str, int] | None = None, *, folder: str | None = None) -> ExposedWorkspace:
    """Validate what to expose. ``ports`` are the app ports (name → container port); the IDE
    (``code`` → 10800) is always added. ``labels`` are e.g. ``{"repo": "owner.repo", "pr": "12"}``
    (keys without ``/`` get the label prefix)."""
    if not ws_id or len(ws_id) > ID_MAX_LEN or not _WS_ID.match(ws_id):
        raise ExposureError(f"invalid workspace id {ws_id!r}")
    app = _app_ports(ports, settings.max_port_name_len)
    folder = folder or f"/workspaces/{ws_id}"
    if not folder.startswith("/") or UNSAFE_URL_CHARS.search(folder):
        raise ExposureError(f"invalid workspace folder {folder!r}")
    return ExposedWorkspace(ws_id, ((CODE_PORT_NAME, CODE_PORT), *app), _owned_labels(settings, ws_id, labels),
                            folder)
