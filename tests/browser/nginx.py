"""Debian's nginx as a plain child process: own prefix and config in a temporary folder, random port.

Not the system service: ``nginx -p <prefix> -c <prefix>/nginx.conf -e <prefix>/error.log -g 'daemon
off;'``, stopped with SIGTERM (then SIGKILL) at teardown. Run as root (CI), the master binds the
port and the worker drops to ``nobody`` as nginx does by default.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Mapping
from pathlib import Path

HERE = Path(__file__).parent


def find_nginx() -> str | None:
    """The nginx binary (Debian puts it in /usr/sbin, which a user's PATH may lack)."""
    return shutil.which("nginx", path=os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"]))


def free_port() -> int:
    """A port that was free a moment ago (nginx must be told its port before the bot starts)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _fill(template: str, values: Mapping[str, object]) -> str:
    def value(m: re.Match[str]) -> str:
        return str(values[m.group(1)])
    return re.sub(r"\{\{(\w+)\}\}", value, template)


def render_config(*, prefix: Path, port: int, bot_port: int, bot_host: str, domain: str,
                  previews: Mapping[str, int]) -> str:
    """The nginx.conf text: the bot's host, and one server per preview label (``code``, ``web``...)
    sending ``<label>-<ws id>.<domain>`` to the workspace's port ``previews[label]``."""
    server = (HERE / "preview.server.template").read_text()
    blocks = "\n".join(_fill(server, {"port": port, "label": label, "domain": domain,
                                      "domain_re": re.escape(domain), "upstream": f"127.0.0.1:{upstream}",
                                      "upstream_port": upstream})
                       for label, upstream in previews.items())
    return _fill((HERE / "nginx.conf.template").read_text(),
                 {"prefix": prefix, "port": port, "bot_port": bot_port, "bot_host": bot_host, "previews": blocks})


class Nginx:
    def __init__(self, binary: str, prefix: Path, port: int) -> None:
        self.binary = binary
        self.prefix = prefix
        self.port = port
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def conf(self) -> Path:
        return self.prefix / "nginx.conf"

    @property
    def error_log(self) -> Path:
        return self.prefix / "error.log"

    def write_config(self, text: str) -> None:
        (self.prefix / "temp").mkdir(parents=True, exist_ok=True)
        self.conf.write_text(text)

    def _command(self, *extra: str) -> list[str]:
        return [self.binary, "-p", str(self.prefix), "-c", str(self.conf), "-e", str(self.error_log), *extra]

    def start(self, timeout: float = 10.0) -> None:
        test = subprocess.run(self._command("-t", "-q"), capture_output=True, text=True)
        if test.returncode != 0:
            raise RuntimeError(f"nginx refused its config:\n{test.stderr}\n{self.conf.read_text()}")
        self.process = subprocess.Popen(self._command("-g", "daemon off;"), stdin=subprocess.DEVNULL,
                                        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"nginx exited with {self.process.returncode}: {self.logs()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.02)
        self.stop()
        raise RuntimeError(f"nginx did not listen on {self.port} within {timeout} s: {self.logs()}")

    def logs(self) -> str:
        return self.error_log.read_text(errors="replace") if self.error_log.exists() else ""

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is None:
            return
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)  # fast shutdown: master and worker go
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if process.stderr is not None:
            process.stderr.close()
