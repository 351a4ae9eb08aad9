"""The SSH gateway's section: its listener, the public name reviewers use, the permission a shell needs.

:class:`GatewaySettings` exists only when ``DEVENV_SSH_PORT`` is set (the gateway is off
otherwise); ``DEVENV_SSH_HOST`` must come with it, since every line the PR comment shows names
it.  The permission a shell needs may be raised to ``admin``, never lowered below ``write``: a
shell runs code in the environment.
"""

from __future__ import annotations

import dataclasses

from bot.settings import variables as var
from bot.settings.reader import Reader

#: The least permission a shell may require (read would let anyone on a public repository run code).
SHELL_FLOOR = "write"


@dataclasses.dataclass(frozen=True)
class GatewaySettings:
    port: int  # where the gateway listens (0: a free port, for tests)
    host: str  # the public host name reviewers connect to
    public_port: int  # the port they connect to (a load balancer may map it)
    permission: str = var.SSH_PERMISSION.preset()
    listen: str = var.HOST.preset()  # the address to listen on (the web server's HOST)
    # The Kubernetes Secret (`name` or `namespace/name`) keeping the host key, when the bot keeps its
    # secrets in the cluster (DEVENV_CREDENTIALS_SECRET set); None: the state directory's file.
    host_key_secret: str | None = None
    link_ttl: float = var.SSH_KEY_LINK_TTL.preset()  # how long a key linked through the sign-in is kept


def read_gateway(r: Reader) -> GatewaySettings | None:
    """The gateway's section, or None without ``DEVENV_SSH_PORT``; problems go to ``r``."""
    if not r.is_set(var.SSH_PORT):
        return None
    port = r.get(var.SSH_PORT)
    host = r.get(var.SSH_HOST)
    if not r.is_set(var.SSH_HOST):
        r.problem("DEVENV_SSH_HOST (the host name reviewers ssh to) is needed with DEVENV_SSH_PORT")
    permission = r.value(var.SSH_PERMISSION)
    if permission not in ("write", "admin"):
        r.problem(f"DEVENV_SSH_PERMISSION={permission!r} is too low: a shell runs code, so it needs write or admin")
    public_port = r.get(var.SSH_PUBLIC_PORT) or port or 0
    host_key_secret = r.value(var.SSH_HOST_KEY_SECRET) if r.is_set(var.CREDENTIALS_SECRET) else None
    return GatewaySettings(port=port or 0, host=host or "", public_port=public_port, permission=permission,
                           listen=r.value(var.HOST), host_key_secret=host_key_secret,
                           link_ttl=r.value(var.SSH_KEY_LINK_TTL))
