"""A real reverse proxy and a real browser in front of the bot's preview access (tests/test_browser.py).

* ``nginx.conf.template`` / ``nginx.py``: Debian's nginx, started as a plain process with its own
  prefix and config under the test's ``tmp_path`` on a random 127.0.0.1 port, playing the ingress
  controller: ``auth_request`` to the bot's ``/auth/check``, ``/_devenv/`` to the bot without auth,
  everything else to the workspace.
* ``standin.py``: the workspace's side: an "OpenVSCode stand-in" page with a WebSocket echo, and an
  application preview page.
* ``fixtures.py``: the ``preview_stack`` fixture wiring the GitHub emulator, the bot (access routes
  mounted as in tests/test_access.py), the stand-ins, nginx and headless Chromium (Debian's, driven
  by Playwright) together.
"""
