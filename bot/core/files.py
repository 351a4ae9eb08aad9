"""The bot's small state files: replaced atomically, and set aside when they cannot be read.

Every file the bot keeps (journal records, agent runs, linked SSH keys, the dotenv of a first run,
git's askpass helper, a scrubbed DevPod file) is written the same way: into a private temporary
file beside it, with its final mode from the start, then renamed over the old one, so a reader or
a crash sees the old file or the new one, never half of one. A file that cannot be read is moved
aside to ``<name>.corrupt`` rather than deleted or overwritten, so nothing is lost.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["set_aside", "write_atomic"]


def write_atomic(path: Path, data: bytes | str, *, mode: int = 0o600, durable: bool = False) -> None:
    """Replace ``path`` with ``data`` (mode ``mode``, whatever the umask); ``durable`` fsyncs before the
    rename, so a crash never leaves an empty file behind it. The temporary file never outlives a failure."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), mode)
            f.write(data.encode() if isinstance(data, str) else data)
            if durable:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def set_aside(path: Path) -> Path:
    """Move a file that cannot be read to ``<stem>.corrupt`` beside it (OSError if it cannot be moved)."""
    aside = path.with_suffix(".corrupt")
    os.replace(path, aside)
    return aside
