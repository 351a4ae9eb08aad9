"""First run without an app: register the GitHub App from ``app.yml`` through GitHub's manifest flow.

``manifest`` builds the manifest and the public address it points GitHub at (and says when GitHub
could not reach that address); ``credentials`` keeps what GitHub sends back (a ``.env`` file, or a
Kubernetes Secret when the bot runs in a pod); ``routes`` serves the pages.
"""

from bot.setup.routes import Setup, add_routes

__all__ = ["Setup", "add_routes"]
