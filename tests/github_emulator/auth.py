"""Authentication as GitHub does it for Apps.

* App endpoints (``/app…``, ``/repos/{o}/{r}/installation``) take
  ``Authorization: Bearer <JWT>``: RS256 signed with the App's private key,
  ``iss`` = App id (string or integer) or client id, ``iat`` at most 60 s in the
  future (clock drift), ``exp`` in the future and at most 10 minutes after ``iat``.
  The error messages are GitHub's.
* Everything else takes an installation token (``ghs_…``, one hour) or a user
  token (``ghu_…``), as ``token <t>`` or ``Bearer <t>`` (the scheme is case
  insensitive: gidgethub sends ``bearer`` for JWTs, ``token`` for tokens).
  Unknown, expired or revoked tokens answer 401 ``Bad credentials``.
"""

from __future__ import annotations

import functools
import secrets
import string

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

DOCS = "https://docs.github.com/rest"
BAD_CREDENTIALS = "Bad credentials"
JWT_UNDECODABLE = "A JSON web token could not be decoded"
JWT_EXP_TOO_FAR = "'Expiration time' claim ('exp') is too far in the future"
JWT_EXPIRED = (
    "'Expiration time' claim ('exp') must be a numeric value representing the future time "
    "at which the assertion expires"
)
JWT_IAT_FUTURE = (
    "'Issued at' claim ('iat') must be an Integer representing the time that the assertion was issued"
)
JWT_BAD_ISS = "'Issuer' claim ('iss') must be an Integer"
MAX_JWT_LIFETIME = 600
CLOCK_DRIFT = 60


@functools.cache
def _shared_private_key() -> str:
    """One 2048-bit key per process: generating one per emulator costs ~50 ms each."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,  # what GitHub's .pem files hold
        serialization.NoEncryption(),
    ).decode()


def new_private_key_pem(fresh: bool = False) -> str:
    if fresh:
        _shared_private_key.cache_clear()
    return _shared_private_key()


def public_key_of(private_key_pem: str):
    return serialization.load_pem_private_key(private_key_pem.encode(), password=None).public_key()


def random_token(prefix: str, length: int = 36) -> str:
    alphabet = string.ascii_letters + string.digits
    return prefix + "".join(secrets.choice(alphabet) for _ in range(length))


def parse_authorization(header: str | None) -> str | None:
    """The credential in ``Authorization: token X`` / ``Bearer X`` (None if absent)."""
    if not header:
        return None
    scheme, _, value = header.strip().partition(" ")
    if scheme.lower() in ("token", "bearer") and value.strip():
        return value.strip()
    return header.strip()  # malformed: treated as an unknown credential


def looks_like_jwt(token: str) -> bool:
    return token.count(".") == 2 and token.startswith("eyJ")


def verify_app_jwt(token: str, public_key, app_id: int, client_id: str, now: float) -> str | None:
    """None if ``token`` authenticates the App at time ``now``, else GitHub's 401 message."""
    try:
        claims = jwt.decode(
            token, public_key, algorithms=["RS256"],
            options={"verify_exp": False, "verify_iat": False, "verify_nbf": False,
                     "require": ["iat", "exp", "iss"]},
        )
    except jwt.PyJWTError:
        return JWT_UNDECODABLE
    iat, exp, iss = claims["iat"], claims["exp"], claims["iss"]
    if not isinstance(iat, (int, float)) or iat > now + CLOCK_DRIFT:
        return JWT_IAT_FUTURE
    if not isinstance(exp, (int, float)) or exp <= now:
        return JWT_EXPIRED
    if exp - iat > MAX_JWT_LIFETIME:
        return JWT_EXP_TOO_FAR
    if str(iss) not in (str(app_id), client_id):
        return JWT_BAD_ISS
    return None


ROLE_TO_PERMISSION = {"admin": "admin", "maintain": "write", "write": "write",
                      "triage": "read", "read": "read", "none": "none"}
"""``collaborators/{u}/permission``: role_name -> permission (maintain ⊂ write, triage ⊂ read)."""
