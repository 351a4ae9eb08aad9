"""Settings: what the operator sets in the environment, and what a repository sets in ``.github/devenv.yml``.

Operator settings are declared once, in the table of :mod:`bot.settings.variables` (name, value
type from :mod:`~bot.settings.values` or :mod:`~bot.settings.kinds`, default, README line), and
read in one pass by :func:`bot.settings.config.load` into frozen dataclasses: the core
:class:`~bot.settings.config.Settings` and one section per feature (``devpod``, ``exposure``,
``access``, ``cloudflare``, ``agent``, ``kube``), each in a module of that name. This is the
lowest layer: nothing here imports a feature; features import their section from here. The
README's configuration table is rendered from the table (:mod:`bot.settings.readme`).
:mod:`bot.settings.repo` reads the per-repository file.
"""
