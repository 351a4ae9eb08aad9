"""Who may open a preview: browser links guarded by GitHub identity and repository permission.

Preview hosts (``code-<ws id>.<domain>`` for the IDE, ``<port>-<ws id>.<domain>`` for an app) serve
untrusted pull-request code, so the bot signs people in with GitHub on its own host and gives each
preview host only a host-only cookie of its own.  ``routes`` adds the routes to the bot's app;
``forward_auth`` answers the proxy's ``/auth/check`` (``origin`` refuses sockets and unsafe
methods opened from another site first); ``signin`` runs ``/auth/login``,
``/auth/callback`` and the handoff to a preview host; ``service`` decides who may open what (from
GitHub's permission, via :mod:`bot.github.permissions`); ``sessions`` signs and reads cookies;
``hosts`` parses host names and return addresses; ``directory`` says what a workspace id points at;
``pages`` renders what is shown instead of a preview; ``preview_proxy`` checks and proxies preview
hosts itself when no ingress controller does (Cloudflare Tunnel); ``gate`` holds the settings.
See docs/access.md.
"""
