"""Scrubbing DEVPOD_HOME: a credential DevPod wrote to disk is rewritten as ``***``.

Defence in depth. The clone token never enters DevPod's environment (:mod:`bot.devpod.askpass`),
but DevPod v0.6.15 writes its whole environment to ``workspace_result.json`` (CONTRACT §9) and
other versions may write more. So after each DevPod operation the bot reads the files under
DEVPOD_HOME changed since the oldest credential it still knows of was handed out, and rewrites any
that holds one (atomically, keeping the file's mode). Only the fact and the file are logged.

Not read: symlinks and other non-regular files, files over :data:`MAX_BYTES`, and the git checkouts
``agent/contexts/<ctx>/workspaces/<id>/content`` (the PR's own files, which can be large; git writes
no askpass answer there and the clone URL carries no credential).
"""

from __future__ import annotations

import json
import logging
import os
import stat
from collections.abc import Iterable, Iterator
from pathlib import Path

from bot.core.files import write_atomic

log = logging.getLogger(__name__)

__all__ = ["MAX_BYTES", "scrub"]

#: Larger files are not read (DevPod's state files are small JSON and YAML).
MAX_BYTES = 16 * 1024 * 1024
#: mtime granularity and clock steps: files this much older than ``since`` are read too.
_SLACK = 2.0


def _is_checkout(rel: tuple[str, ...]) -> bool:
    """``agent/contexts/<ctx>/workspaces/<id>/content``: the clone of the PR."""
    return len(rel) == 6 and rel[0] == "agent" and rel[1] == "contexts" and rel[3] == "workspaces" \
        and rel[5] == "content"


def _files(home: Path, since: float) -> Iterator[Path]:
    for root, dirs, files in os.walk(home):  # does not follow symlinks to directories
        rel = Path(root).relative_to(home).parts
        dirs[:] = [d for d in dirs if not _is_checkout((*rel, d))]
        for name in files:
            path = Path(root, name)
            try:
                st = path.lstat()
            except OSError:
                continue
            if stat.S_ISREG(st.st_mode) and st.st_size <= MAX_BYTES and st.st_mtime >= since - _SLACK:
                yield path


def _forms(values: Iterable[str]) -> list[bytes]:
    """Each value as it may appear in a file: raw, and escaped inside a JSON string."""
    out: set[bytes] = set()
    for v in values:
        if v:
            out.add(v.encode())
            out.add(json.dumps(v)[1:-1].encode())
    return sorted(out, key=len, reverse=True)


def _rewrite(path: Path, data: bytes, mode: int) -> None:
    write_atomic(path, data, mode=stat.S_IMODE(mode) or 0o600)


def scrub(home: Path, values: Iterable[str], *, since: float = 0.0) -> list[Path]:
    """Rewrite every file under ``home`` changed since ``since`` (epoch seconds) that holds one of
    ``values``, each occurrence replaced by ``***``. Returns the files rewritten."""
    forms = _forms(values)
    if not forms or not home.is_dir():
        return []
    scrubbed = []
    for path in _files(home, since):
        try:
            data = path.read_bytes()
            if not any(f in data for f in forms):
                continue
            mode = path.stat().st_mode
            for f in forms:
                data = data.replace(f, b"***")
            _rewrite(path, data, mode)
        except OSError as exc:  # a file DevPod removed or rewrote meanwhile; try the others
            log.warning("could not scrub %s: %s", path, exc.strerror or exc.__class__.__name__)
            continue
        log.warning("scrubbed a credential DevPod had written to %s", path)
        scrubbed.append(path)
    return scrubbed
