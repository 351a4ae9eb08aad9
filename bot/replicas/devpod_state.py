"""DevPod's own state of each workspace, kept in the cluster so that any replica can act on it.

DevPod knows a workspace only from files in its DEVPOD_HOME (CONTRACT §4.6): ``stop``, ``delete``,
``status`` and ``ssh`` fail with "workspace X doesn't exist" without them, and an ``up`` without
them creates the workspace anew with a new random UID, i.e. a new volume, orphaning the old one.
So with the ``kubernetes`` state backend each workspace's files are a Secret ``devenv-devpod-<id>``
in the bot's namespace, and every DevPod command on a workspace runs inside
:meth:`ClusterDevPodState.using`:

* before it, when the Secret's content hash (an annotation) differs from the files in this
  replica's DEVPOD_HOME, those files are replaced by the Secret's;
* after a command that may change them, the files are packed (a tar.gz with fixed metadata, so the
  same files give the same bytes) and written back when their hash changed;
* after a successful ``delete`` (:meth:`ClusterDevPodState.forget`) the Secret goes.

What is kept: ``contexts/<ctx>/workspaces/<id>/`` (``workspace.json``, ``workspace_result.json``),
the local agent's ``agent/contexts/<ctx>/workspaces/<id>/`` without ``content/`` (the clone of
the PR, re-made by DevPod) and ``binaries/``, and ``contexts/<ctx>/machines/<machine>/`` when the
workspace names a machine. Regular files only, at most :data:`MAX_BYTES` packed. Credentials:
the scrubber (:mod:`bot.devpod.scrub`) already rewrote any token DevPod wrote; whatever still has a
GitHub token's shape, or a value the caller names, is rewritten as ``***`` here before it leaves.

Never a new UID: when the workspace should exist (the caller says so) and neither the cluster nor
this replica holds its state, or the Secret cannot be read or unpacked, :class:`StateUnavailable`
is raised and DevPod is not run. A workspace with no Secret is acted on from this home's own files
(a home from before the ``kubernetes`` backend) unless this replica saw its Secret before: then
another replica deleted it, and the stale files here are removed. A save that fails is retried before this replica's next command
on the workspace (and that command fails if it fails again), so another replica never acts on an
older copy once this one knows it is behind.

With the ``file`` backend :data:`LOCAL` is used: nothing is restored or saved.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import io
import json
import logging
import os
import re
import shutil
import tarfile
from collections.abc import AsyncIterator, Callable, Iterable
from pathlib import Path, PurePosixPath
from typing import Any, Protocol

from bot.cluster.kube import Kind, KubeApi

log = logging.getLogger(__name__)

__all__ = ["LOCAL", "MAX_BYTES", "ClusterDevPodState", "DevPodState", "StateUnavailable", "restored", "secret_name"]

SECRET_KIND = Kind("v1", "Secret", "secrets")
PREFIX = "devenv-devpod-"
HASH_ANNOTATION = "devenv.dev/devpod-state-sha256"
DATA_KEY = "state.tar.gz"
#: Packed size bound: well under a Secret's 1 MiB (DevPod's files of one workspace are a few kB).
MAX_BYTES = 256 * 1024
#: GitHub token shapes (installation, user, OAuth, refresh, fine-grained PAT).
TOKEN_SHAPE = re.compile(rb"\b(?:gh[opsur]_[A-Za-z0-9]{30,}|github_pat_[A-Za-z0-9_]{40,})")
_SKIPPED = {"content", "binaries"}  # under the agent's workspace directory


class StateUnavailable(Exception):
    """DevPod's state of a workspace cannot be had: the command must not run (it would make a new UID)."""


def secret_name(ws_id: str) -> str:
    return PREFIX + ws_id


class DevPodState(Protocol):
    """What the DevPod paths call around each command on a workspace."""

    def using(self, ws_id: str, *, expected: bool, changes: bool) -> contextlib.AbstractAsyncContextManager[None]:
        """Restore before, save after (when ``changes``); ``expected``: the workspace should exist."""
        ...

    async def forget(self, ws_id: str) -> None:
        """The workspace was deleted: its kept state goes."""
        ...


class _Local:
    """The ``file`` backend: DEVPOD_HOME is the only copy."""

    @contextlib.asynccontextmanager
    async def using(self, ws_id: str, *, expected: bool, changes: bool) -> AsyncIterator[None]:
        yield

    async def forget(self, ws_id: str) -> None:
        return None


LOCAL: DevPodState = _Local()


async def restored(state: DevPodState, ws_id: str) -> str | None:
    """Before a ``devpod ssh`` or ``status`` that changes nothing: restore; why it cannot run, or None."""
    try:
        async with state.using(ws_id, expected=True, changes=False):
            return None
    except StateUnavailable as exc:
        return str(exc)


def _roots(home: Path, context: str, ws_id: str) -> list[PurePosixPath]:
    ws = PurePosixPath("contexts", context, "workspaces", ws_id)
    roots = [ws, PurePosixPath("agent", "contexts", context, "workspaces", ws_id)]
    try:
        machine = json.loads((home / ws / "workspace.json").read_bytes()).get("machine") or {}
    except (OSError, ValueError, AttributeError):
        machine = {}
    mid = machine.get("id") if isinstance(machine, dict) else None
    if isinstance(mid, str) and re.fullmatch(r"[a-z0-9][a-z0-9-]{0,62}", mid):
        roots.append(PurePosixPath("contexts", context, "machines", mid))
    return roots


def local_files(home: Path, context: str, ws_id: str) -> dict[str, bytes]:
    """The workspace's DevPod files in ``home``: relative POSIX path -> bytes (the clone is never walked)."""
    files: dict[str, bytes] = {}
    for root in _roots(home, context, ws_id):
        base = home / root
        if not base.is_dir() or base.is_symlink():
            continue
        for here, dirs, names in os.walk(base):  # does not follow symlinks to directories
            rel = Path(here).relative_to(base).parts
            if not rel and root.parts[0] == "agent":
                dirs[:] = [d for d in dirs if d not in _SKIPPED]
            for name in names:
                path = Path(here, name)
                if path.is_file() and not path.is_symlink():
                    files[str(root.joinpath(*rel, name))] = path.read_bytes()
    return files


def digest(files: dict[str, bytes]) -> str:
    h = hashlib.sha256()
    for name in sorted(files):
        h.update(name.encode() + b"\0" + hashlib.sha256(files[name]).digest())
    return h.hexdigest()


def redact(files: dict[str, bytes], values: Iterable[str] = ()) -> dict[str, bytes]:
    """Every token-shaped string, and each of ``values``, rewritten as ``***``."""
    forms = sorted({f for v in values if v for f in (v.encode(), json.dumps(v)[1:-1].encode())}, key=len, reverse=True)
    out = {}
    for name, data in files.items():
        clean = TOKEN_SHAPE.sub(b"***", data)
        for form in forms:
            clean = clean.replace(form, b"***")
        if clean != data:
            log.warning("a credential in DevPod's %s was rewritten before it was kept in the cluster", name)
        out[name] = clean
    return out


def pack(files: dict[str, bytes]) -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w:gz", compresslevel=9) as tar:
        for name in sorted(files):
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(files[name]), 0o600, 0
            tar.addfile(info, io.BytesIO(files[name]))
    return raw.getvalue()


def unpack(data: bytes, allowed: list[PurePosixPath]) -> dict[str, bytes]:
    """The files of a packed state; ValueError for anything but regular files under ``allowed``."""
    files: dict[str, bytes] = {}
    total = 0
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        for info in tar:
            name = PurePosixPath(info.name)
            if not info.isfile() or ".." in name.parts or name.is_absolute() \
                    or not any(name.is_relative_to(root) for root in allowed):
                raise ValueError(f"unexpected entry {info.name!r}")
            total += info.size
            if total > 16 * MAX_BYTES:
                raise ValueError("too large once unpacked")
            member = tar.extractfile(info)
            files[str(name)] = member.read() if member is not None else b""
    return files


class ClusterDevPodState:
    """DevPod's state of each workspace in a Secret of the bot's namespace (see the module docstring)."""

    def __init__(self, api: KubeApi, home: Path, context: str, *, secrets: Callable[[], Iterable[str]] = tuple,
                 max_bytes: int = MAX_BYTES) -> None:
        self.api, self.home, self.context = api, home, context
        self.secrets = secrets  # values that must never leave (the masker's)
        self.max_bytes = max_bytes
        self._synced: dict[str, str] = {}  # ws id -> hash of the files the cluster and this home both hold
        self._unsaved: set[str] = set()  # a save failed: this home is ahead of the cluster
        self._using: dict[str, int] = {}  # ws id -> commands running here now (the home is current)

    @contextlib.asynccontextmanager
    async def using(self, ws_id: str, *, expected: bool, changes: bool) -> AsyncIterator[None]:
        if not self._using.get(ws_id):
            await self.restore(ws_id, expected=expected)
        self._using[ws_id] = self._using.get(ws_id, 0) + 1
        try:
            yield
        finally:
            self._using[ws_id] -= 1
            if not self._using[ws_id]:
                del self._using[ws_id]
            if changes:
                await self.save(ws_id)

    async def restore(self, ws_id: str, *, expected: bool) -> None:
        """Make this home hold the cluster's copy; :class:`StateUnavailable` when it cannot."""
        if ws_id in self._unsaved:
            await self.save(ws_id)
            if ws_id in self._unsaved:
                raise StateUnavailable(f"DevPod's state of {ws_id} could not be saved to the cluster; "
                                       "not running DevPod until it is (see the bot's log)")
            return
        try:
            secret = await self.api.get(SECRET_KIND, secret_name(ws_id))
        except Exception as exc:
            raise StateUnavailable(f"DevPod's state of {ws_id} could not be read from the cluster "
                                   f"({exc.__class__.__name__}); try again later") from exc
        if secret is None and self._synced.pop(ws_id, None) is not None:
            # It was in the cluster while this replica held it, and another one deleted it since.
            self._write(ws_id, {})
            log.info("%s: deleted by another replica; its stale DevPod state here is removed", ws_id)
        local = local_files(self.home, self.context, ws_id)
        if secret is None:
            if expected and not local:
                raise StateUnavailable(
                    f"DevPod's state of {ws_id} is missing from the cluster (Secret {secret_name(ws_id)}), so "
                    "DevPod would create the workspace anew with a new volume; not running it. Delete the "
                    "environment to start over.")
            return
        wanted = (secret.get("metadata", {}).get("annotations") or {}).get(HASH_ANNOTATION)
        if wanted and wanted == digest(local):
            self._synced[ws_id] = wanted
            return
        try:
            roots = _roots(self.home, self.context, ws_id)
            files = unpack(base64.b64decode((secret.get("data") or {})[DATA_KEY]),
                           roots + [PurePosixPath("contexts", self.context, "machines")])
            if digest(files) != wanted:
                raise ValueError("its content does not match its hash")
        except (KeyError, ValueError, OSError, tarfile.TarError, EOFError) as exc:
            raise StateUnavailable(f"DevPod's state of {ws_id} in Secret {secret_name(ws_id)} is unreadable "
                                   f"({exc}); not running DevPod") from exc
        self._write(ws_id, files)
        self._synced[ws_id] = wanted
        log.info("%s: DevPod's state restored from the cluster (%d files)", ws_id, len(files))

    def _write(self, ws_id: str, files: dict[str, bytes]) -> None:
        for root in _roots(self.home, self.context, ws_id):  # the whole agent directory: its clone may be stale
            shutil.rmtree(self.home / root, ignore_errors=True)
        for name, data in files.items():
            target = self.home / name
            target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            target.write_bytes(data)
            target.chmod(0o600)

    async def save(self, ws_id: str) -> None:
        """Write this home's files to the Secret when they changed; a failure is logged and remembered."""
        files = redact(local_files(self.home, self.context, ws_id), self.secrets())
        if not files:  # a failed first up, or a delete: nothing to keep (forget removes the Secret)
            self._unsaved.discard(ws_id)
            return
        wanted = digest(files)
        if self._synced.get(ws_id) == wanted and ws_id not in self._unsaved:
            return
        data = pack(files)
        if len(data) > self.max_bytes:
            log.error("%s: DevPod's state is %d bytes packed, over %d: not kept in the cluster", ws_id,
                      len(data), self.max_bytes)
            self._unsaved.add(ws_id)
            return
        try:
            await self._put(ws_id, data, wanted)
        except Exception as exc:
            log.error("%s: DevPod's state could not be saved to the cluster (%s); retrying before the next command",
                      ws_id, exc.__class__.__name__)
            self._unsaved.add(ws_id)
            return
        self._synced[ws_id] = wanted
        self._unsaved.discard(ws_id)

    async def _put(self, ws_id: str, data: bytes, wanted: str) -> None:
        name = secret_name(ws_id)
        metadata: dict[str, Any] = {"name": name, "labels": {"app.kubernetes.io/managed-by": "devenv-bot"},
                                    "annotations": {HASH_ANNOTATION: wanted}}
        body = {"apiVersion": "v1", "kind": "Secret", "type": "Opaque", "metadata": metadata,
                "data": {DATA_KEY: base64.b64encode(data).decode()}}
        for _ in range(3):  # lost a race with another writer: read and try again
            current = await self.api.get(SECRET_KIND, name)
            if current is None:
                if await self.api.create(SECRET_KIND, body):
                    return
                continue
            metadata["resourceVersion"] = current["metadata"]["resourceVersion"]
            if await self.api.replace(SECRET_KIND, name, body):
                return
        raise RuntimeError("conflicting writers")

    async def forget(self, ws_id: str) -> None:
        self._synced.pop(ws_id, None)
        self._unsaved.discard(ws_id)
        try:
            await self.api.delete(SECRET_KIND, secret_name(ws_id))
        except Exception as exc:
            log.error("%s: the Secret %s with DevPod's state could not be deleted (%s); delete it by hand",
                      ws_id, secret_name(ws_id), exc.__class__.__name__)
