"""The SSH user name the gateway reads: ``<GitHub login>+<workspace id>``, and the lines shown to users.

An SSH user name must say two things: which environment (the workspace id, as the PR comment
shows it) and who claims to connect (a GitHub login: GitHub has no look-up from a key to its
account, so the claim is checked against ``GET /users/{login}/keys`` instead).  ``+`` can appear
in neither a login (letters, digits, single hyphens) nor a workspace id (lower-case letters,
digits, hyphens), so ``login+workspace`` splits one way only and needs no quoting in a shell or
in ``~/.ssh/config``.  All pure.
"""

from __future__ import annotations

import re
from typing import NamedTuple

from bot.devpod.ids import ID_MAX_LEN

__all__ = ["Target", "is_bot", "parse_user", "ssh_command", "user_name"]

#: A GitHub login: up to 39 letters, digits and single inner hyphens; ``[bot]`` marks an App's account.
_LOGIN = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9]|-(?=[A-Za-z0-9])){0,38}(?:\[bot\])?")
_WORKSPACE = re.compile(rf"[a-z0-9][a-z0-9-]{{0,{ID_MAX_LEN - 1}}}")


class Target(NamedTuple):
    login: str
    ws_id: str


def is_bot(login: str) -> bool:
    """An App's account (``name[bot]``): never a person at a keyboard."""
    return login.lower().endswith("[bot]")


def parse_user(name: str) -> Target | str:
    """``login+workspace`` → :class:`Target`, or the one-line reason the name is not understood."""
    login, plus, ws_id = name.partition("+")
    if not plus:
        return (f"say who you are: ssh -p <port> <your GitHub login>+{name}@<host>"
                if _WORKSPACE.fullmatch(name) else "the user name must be <your GitHub login>+<workspace>")
    if not _LOGIN.fullmatch(login):
        return f"{login!r} is not a GitHub login"
    if not _WORKSPACE.fullmatch(ws_id):
        return f"{ws_id!r} is not a workspace name (the PR comment shows it)"
    return Target(login, ws_id)


def user_name(login: str, ws_id: str) -> str:
    return f"{login}+{ws_id}"


def ssh_command(host: str, port: int, ws_id: str, login: str = "LOGIN") -> str:
    """The ``ssh`` line the PR comment shows (``LOGIN``: the reader's own GitHub login)."""
    port_part = "" if port == 22 else f"-p {port} "
    return f"ssh {port_part}{user_name(login, ws_id)}@{host}"

