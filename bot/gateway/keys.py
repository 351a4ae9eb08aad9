"""The gateway's own keys, made once and kept in the bot's state directory (mode 0600).

* The **host key** (``ssh/host_ed25519``) is what clients pin in ``known_hosts``; losing it makes
  every reviewer's ``ssh`` warn of a changed host, so it is made only when absent and never
  rewritten.  Its SHA256 fingerprint is logged at start and shown on the bot's ``/`` page and in
  docs/ssh.md's instructions, so users can check it on first contact.
* The **client key** (``ssh/client_ed25519``) is what the gateway offers to the workspace on its
  own connection through ``devpod ssh --stdio``.  DevPod's in-container server trusts the tunnel
  rather than the key (CONTRACT §3); a test's real ``sshd`` authorizes it.

On Kubernetes the state directory is the bot's volume; keeping the host key in a Secret instead
is noted as not done in docs/ssh.md.
"""

from __future__ import annotations

import os
from pathlib import Path

import asyncssh

__all__ = ["client_key", "fingerprint", "host_key", "load_or_create"]


def load_or_create(path: Path) -> asyncssh.SSHKey:
    """The Ed25519 private key at ``path``, made (mode 0600, in a 0700 directory) if absent."""
    try:
        return asyncssh.read_private_key(str(path))
    except FileNotFoundError:
        pass
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    key = asyncssh.generate_private_key("ssh-ed25519")
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process made it first: use theirs
        return asyncssh.read_private_key(str(path))
    with os.fdopen(fd, "wb") as f:
        f.write(key.export_private_key())
    return key


def host_key(state_dir: Path) -> asyncssh.SSHKey:
    return load_or_create(Path(state_dir) / "ssh" / "host_ed25519")


def client_key(state_dir: Path) -> asyncssh.SSHKey:
    return load_or_create(Path(state_dir) / "ssh" / "client_ed25519")


def fingerprint(key: asyncssh.SSHKey) -> str:
    """``SHA256:…``, as ``ssh-keygen -lf`` and OpenSSH's first-contact prompt show it."""
    return str(key.get_fingerprint("sha256"))
