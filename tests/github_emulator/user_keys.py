"""``GET /users/{username}/keys``: the public SSH keys GitHub publishes for an account.

Public on GitHub (no credential needed; an installation token may read it too, with no App
permission).  Tests give a login its keys with :func:`set_user_keys`; a login in
``emu.nonexistent_users`` answers 404, any other login without keys an empty list.
Kept apart from ``rest.py``; importing this module registers the route.
"""

from __future__ import annotations

from typing import Any

from .permissions import NEEDS, Need
from .rest import ApiError, Reply, paginate, route

DOCS = "https://docs.github.com/en/rest/users/keys#list-public-keys-for-a-user"

NEEDS["users/list-public-keys-for-user"] = Need(doc="public: any credential or none; no App permission")


def keys_of(emu: Any) -> dict[str, list[str]]:
    """login (lower-case) -> its public keys (OpenSSH one-line form), kept on the emulator."""
    table = getattr(emu, "user_keys", None)
    if table is None:
        table = emu.user_keys = {}
    return table


def set_user_keys(emu: Any, login: str, keys: list[str]) -> None:
    """Publish ``keys`` (``ssh-ed25519 AAAA… comment`` lines) as ``login``'s, replacing any before."""
    keys_of(emu)[login.lower()] = [" ".join(k.split()[:2]) for k in keys]  # GitHub drops the comment


@route("GET", "/users/{username}/keys", auth="any")
async def list_public_keys(emu, req):
    login = req.params["username"]
    if login.lower() in {u.lower() for u in emu.nonexistent_users}:
        raise ApiError(404, "Not Found")
    keys = keys_of(emu).get(login.lower(), [])
    items = [{"id": 1000 + i, "key": key} for i, key in enumerate(keys)]
    chunk, headers = paginate(emu, req, items)
    return Reply(200, chunk, headers)
