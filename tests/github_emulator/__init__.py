"""An emulated GitHub (Enterprise Server layout) for the test suite.

``GitHubEmulator`` serves the REST API under ``/api/v3`` and a few web pages,
validates every request and response against GitHub's OpenAPI description
(``SHARED_GITHUB``), enforces the App permissions GitHub asks of installation tokens
(``permissions.py``, installations holding app.yml's), and records every call.  See
``server.py`` for the pipeline and ``fixtures.py`` for the ``github`` pytest fixture.
"""

from .openapi import SHARED_GITHUB
from .server import GitHubEmulator
from .state import Call, Fault

__all__ = ["SHARED_GITHUB", "Call", "Fault", "GitHubEmulator"]
