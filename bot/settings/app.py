"""The GitHub App's identity and secrets: ``APP_ID``, the private key, the webhook secret.

With none of them set the bot is not registered yet and serves the setup page
(:attr:`bot.settings.config.Settings.setup_mode`). With any of them set, all three are
needed, and a private key that does not parse is caught here, not on the first webhook.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from bot.settings import variables as var
from bot.settings.reader import Reader


@dataclasses.dataclass(frozen=True)
class GitHubApp:
    """The registered GitHub App's identity and secrets."""

    app_id: str
    private_key: str = dataclasses.field(repr=False)
    webhook_secret: str = dataclasses.field(repr=False)
    client_id: str | None = None
    client_secret: str | None = dataclasses.field(default=None, repr=False)


def unescape_pem(text: str) -> str:
    # Probot accepts keys whose newlines were written as "\n" on one line
    # (the only way to put them in many secret stores and .env files).
    text = text.strip().strip('"').strip("'")
    if "\\n" in text and "\n" not in text:
        text = text.replace("\\n", "\n")
    return text + "\n"


def read_app(r: Reader) -> GitHubApp | None:
    """The App, or None when nothing of it is configured (first run: the setup page registers it).

    Problems go to ``r``; the App returned then is incomplete, and :meth:`Reader.check` refuses it.
    """
    if not any(r.is_set(v) for v in (var.APP_ID, var.PRIVATE_KEY, var.PRIVATE_KEY_PATH, var.WEBHOOK_SECRET)):
        return None
    app_id = r.get(var.APP_ID) or ""
    if not r.is_set(var.APP_ID):
        r.problem("APP_ID (the App ID shown on the GitHub App's settings page) is not set")
    secret = r.get(var.WEBHOOK_SECRET) or ""
    if not secret:
        r.problem("WEBHOOK_SECRET (the secret set on the App's webhook; devenv-bot never accepts unsigned "
                  "deliveries) is not set")
    return GitHubApp(app_id=app_id, private_key=_private_key(r), webhook_secret=secret,
                     client_id=r.get(var.GITHUB_CLIENT_ID), client_secret=r.get(var.GITHUB_CLIENT_SECRET))


def _private_key(r: Reader) -> str:
    """The PEM text from ``PRIVATE_KEY`` or the file ``PRIVATE_KEY_PATH`` names, checked to parse."""
    key_text, key_path = r.get(var.PRIVATE_KEY), r.get(var.PRIVATE_KEY_PATH)
    if key_text and key_path:
        r.problem("set only one of PRIVATE_KEY and PRIVATE_KEY_PATH, not both")
    source = "PRIVATE_KEY"
    if key_path is not None and not key_text:
        source = "PRIVATE_KEY_PATH"
        try:
            key_text = Path(key_path).expanduser().read_text()
        except OSError as exc:
            r.problem(f"PRIVATE_KEY_PATH={str(key_path)!r} cannot be read ({exc.strerror}); "
                      "point it at the App's .pem file")
            return ""
    if not key_text and key_path is None:
        r.problem("PRIVATE_KEY (the App's PEM private key, '\\n'-escaped is fine) or PRIVATE_KEY_PATH "
                  "(its file) is not set")
        return ""
    pem = unescape_pem(key_text or "")
    try:
        key = load_pem_private_key(pem.encode(), password=None)
    except (ValueError, TypeError):
        r.problem(f"{source} does not hold a PEM private key (it should start with "
                  "'-----BEGIN RSA PRIVATE KEY-----'); download a new key from the GitHub App's settings page")
        return pem
    if not isinstance(key, rsa.RSAPrivateKey):
        # GitHub signs App JWTs with RS256 only; another key type would fail on the first request.
        kind = type(key).__name__.removeprefix("_").removesuffix("PrivateKey")
        r.problem(f"{source} holds a key of type {kind}, but GitHub Apps sign with RSA keys (RS256): download "
                  "the App's key from its settings page ('Generate a private key')")
    return pem
