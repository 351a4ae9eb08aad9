"""An emulator of the Cloudflare API v4 endpoints the bot uses (tunnel configuration, DNS records)."""

from .server import API_PREFIX, Call, CloudflareEmulator, Fault

__all__ = ["API_PREFIX", "Call", "CloudflareEmulator", "Fault"]
