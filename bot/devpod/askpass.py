"""The askpass helper DevPod's git runs: it fetches the clone token from the bot, never from its environment.

Design. DevPod v0.6.15 writes its whole process environment to
``workspace_result.json`` in clear (CONTRACT §9), so the installation token must not be in it.
What DevPod's environment holds instead is the path of a unix socket in a 0700 directory of the
bot's and a nonce bound to one DevPod operation (:class:`bot.devpod.credentials.GitAccess` serves
both). git runs this program as ``GIT_ASKPASS`` with its prompt as the only argument:

* ``Username for 'https://github.com': `` is answered here, ``x-access-token``, without asking anyone;
* any other prompt (``Password for 'https://x-access-token@github.com': ``) sends the nonce over the
  socket and prints the token the bot answers with; a refusal (a used, expired or unknown nonce,
  the operation over, the socket gone) prints a line on stderr and exits 1, which git reports as a
  failed authentication.

It is run as a file, ``python -I -S askpass.py`` (isolated, no site-packages), so it imports the
standard library only and works from an installed wheel as from a checkout. Its protocol: one line
``<nonce>\\n`` from the helper; one line back, ``ok <token>`` or ``refused``.
"""

from __future__ import annotations

import os
import socket
import sys

#: The environment variables git's environment carries instead of the token.
SOCKET_ENV = "DEVENV_ASKPASS_SOCKET"
NONCE_ENV = "DEVENV_ASKPASS_NONCE"
#: The user name of an installation token over HTTPS.
USERNAME = "x-access-token"
#: The most a reply may be (a token is ~40 characters).
MAX_REPLY = 4096
TIMEOUT = 10.0


def ask(socket_path: str, nonce: str, timeout: float = TIMEOUT) -> str | None:
    """The token the bot hands out for ``nonce``, or None if it refuses."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        s.connect(socket_path)
        s.sendall(nonce.encode("ascii", "replace") + b"\n")
        reply = b""
        while len(reply) < MAX_REPLY and not reply.endswith(b"\n"):
            chunk = s.recv(MAX_REPLY)
            if not chunk:
                break
            reply += chunk
    line = reply.decode("utf-8", "replace").strip()
    if line.startswith("ok ") and len(line) > 3:
        return line[3:]
    return None


def main(argv: list[str]) -> int:
    prompt = argv[0] if argv else ""
    if prompt.lower().startswith("username"):
        print(USERNAME)
        return 0
    socket_path, nonce = os.environ.get(SOCKET_ENV, ""), os.environ.get(NONCE_ENV, "")
    if not socket_path or not nonce:
        print("devenv-bot askpass: no socket or nonce in the environment", file=sys.stderr)
        return 1
    try:
        token = ask(socket_path, nonce)
    except OSError as exc:
        print(f"devenv-bot askpass: the bot could not be asked ({exc.__class__.__name__})", file=sys.stderr)
        return 1
    if token is None:
        print("devenv-bot askpass: refused (the nonce is used up, expired or unknown)", file=sys.stderr)
        return 1
    print(token)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
