"""The gateway's own keys, made once and kept: in the state directory (mode 0600), or the host key
in a Kubernetes Secret when the bot keeps its secrets in the cluster.

* The **host key** is what clients pin in ``known_hosts``; losing it makes every reviewer's
  ``ssh`` warn of a changed host, so it is made only when absent and never rewritten.  Its SHA256
  fingerprint is logged at start and shown on the bot's ``/`` page, so users can check it on first
  contact.  Where it lives is a :class:`HostKeySource`, chosen by :func:`bot.services.host_key_source`:

  - :class:`FileHostKey`: ``<state dir>/ssh/host_ed25519`` (mode 0600, ``O_EXCL`` so two processes
    agree on the first key).
  - :class:`SecretHostKey`: with ``DEVENV_CREDENTIALS_SECRET`` set (the same condition under which
    the setup flow stores the App's credentials in a Secret, :mod:`bot.setup.credentials`), the
    Secret ``DEVENV_SSH_HOST_KEY_SECRET``.  It is read; when it does not exist it is created (with
    the key of the state directory if one was made before, so an upgrade keeps the fingerprint,
    else a new one); a create answered 409 means another replica won the race, and its key is read
    and used.  The Secret is never updated or deleted by the bot, so the key is never regenerated
    while it exists; a Secret without a readable key stops the start (the gateway's, hence the bot's)
    instead of being replaced.
    The verbs are ``get`` (on that name) and ``create``: deploy/components/ssh-gateway's Role.
    Any failure raises :class:`HostKeyUnavailable` with the API's status, never the Secret's body;
    the key itself is never logged.
* The **client key** (``ssh/client_ed25519``) is what the gateway offers to the workspace on its
  own connection through ``devpod ssh --stdio``.  DevPod's in-container server trusts the tunnel
  rather than the key (CONTRACT §3); a test's real ``sshd`` authorizes it.  It stays in the state
  directory.
"""

from __future__ import annotations

import base64
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import asyncssh

from bot.cluster.kube import in_daemon_thread
from bot.core import logs

log = logging.getLogger(__name__)

__all__ = ["FileHostKey", "HostKeySource", "HostKeyUnavailable", "SecretHostKey", "client_key", "fingerprint",
           "host_key", "load_or_create"]

#: The key of the Secret's data that holds the host key (OpenSSH private key format).
SECRET_KEY = "host_ed25519"
LABELS = {"app.kubernetes.io/name": "devenv-bot", "app.kubernetes.io/component": "ssh-gateway"}


class HostKeyUnavailable(Exception):
    """The host key could not be read or kept; the message says where and why (never the key)."""


class HostKeySource(Protocol):
    def describe(self) -> str: ...

    async def load(self) -> asyncssh.SSHKey: ...


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


def host_key_path(state_dir: Path) -> Path:
    return Path(state_dir) / "ssh" / "host_ed25519"


def host_key(state_dir: Path) -> asyncssh.SSHKey:
    return load_or_create(host_key_path(state_dir))


def client_key(state_dir: Path) -> asyncssh.SSHKey:
    return load_or_create(Path(state_dir) / "ssh" / "client_ed25519")


def never_logged(key: asyncssh.SSHKey) -> asyncssh.SSHKey:
    """``key``, its private text and that text's base64 (as a Secret carries it) added to the log redactor:
    a debug log of the Kubernetes client's responses shows ``***`` instead."""
    pem = key.export_private_key()
    logs.redactor.add(pem.decode())
    logs.redactor.add(base64.b64encode(pem).decode())
    return key


def fingerprint(key: asyncssh.SSHKey) -> str:
    """``SHA256:…``, as ``ssh-keygen -lf`` and OpenSSH's first-contact prompt show it."""
    return str(key.get_fingerprint("sha256"))


class FileHostKey:
    """The host key in the state directory (outside a cluster, or without DEVENV_CREDENTIALS_SECRET)."""

    def __init__(self, state_dir: Path) -> None:
        self.path = host_key_path(state_dir)

    def describe(self) -> str:
        return str(self.path)

    async def load(self) -> asyncssh.SSHKey:
        return never_logged(load_or_create(self.path))


class SecretHostKey:
    """The host key in the Kubernetes Secret ``namespace/name``: read, else created once (see the module)."""

    def __init__(self, namespace: str, name: str, api_client: Callable[[], Any], *, seed: Path | None = None) -> None:
        self.namespace, self.name, self.api_client, self.seed = namespace, name, api_client, seed

    def describe(self) -> str:
        return f"the Kubernetes Secret {self.namespace}/{self.name}"

    async def load(self) -> asyncssh.SSHKey:
        try:
            key, created = await in_daemon_thread(f"read or create {self.describe()}", self._load)
        except HostKeyUnavailable:
            raise
        except Exception as exc:  # forbidden, unreachable: said with the status, never the response body
            status = getattr(exc, "status", None)
            why = f"the Kubernetes API answered {status}" if status else exc.__class__.__name__
            hint = "; deploy/components/ssh-gateway's Role grants what the bot needs" if status == 403 else ""
            raise HostKeyUnavailable(f"the SSH host key could not be read from {self.describe()} ({why}){hint}"
                                     ) from None
        log.info("SSH host key %s %s", "stored in" if created else "read from", self.describe())
        return never_logged(key)

    def _load(self) -> tuple[asyncssh.SSHKey, bool]:
        from kubernetes import client  # slow to import: only when the Secret is used
        from kubernetes.client.exceptions import ApiException

        api = client.CoreV1Api(self.api_client())
        try:
            return self._parse(api.read_namespaced_secret(self.name, self.namespace)), False
        except ApiException as exc:
            if exc.status != 404:
                raise
        key = self._first_key()
        body = client.V1Secret(
            api_version="v1", kind="Secret", type="Opaque",
            metadata=client.V1ObjectMeta(name=self.name, labels=LABELS),
            data={SECRET_KEY: base64.b64encode(key.export_private_key()).decode()})
        try:
            api.create_namespaced_secret(self.namespace, body)
            return key, True
        except ApiException as exc:
            if exc.status != 409:
                raise
        # Another replica (or the CLI) created it between our read and our create: its key wins.
        return self._parse(api.read_namespaced_secret(self.name, self.namespace)), False

    def _first_key(self) -> asyncssh.SSHKey:
        """The state directory's key if one was made before (keeps the fingerprint users pinned), else a new one."""
        if self.seed is not None:
            try:
                return asyncssh.read_private_key(str(self.seed))
            except (OSError, asyncssh.KeyImportError):
                pass
        return asyncssh.generate_private_key("ssh-ed25519")

    def _parse(self, secret: Any) -> asyncssh.SSHKey:
        encoded = (secret.data or {}).get(SECRET_KEY)
        try:
            return asyncssh.import_private_key(base64.b64decode(encoded or "", validate=True))
        except (ValueError, asyncssh.KeyImportError):
            raise HostKeyUnavailable(f"{self.describe()} has no readable SSH host key under {SECRET_KEY!r}; "
                                     "delete it to have a new key made (every user then sees a changed host key)"
                                     ) from None
