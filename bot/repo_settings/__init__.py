"""Per-repository settings: ``.github/devenv.yml`` on a pull request's base commit, read through GitHub.

:mod:`~bot.repo_settings.schema` (the values and their defaults), :mod:`~bot.repo_settings.validate`
(the pure parser, built from :mod:`~bot.repo_settings.yaml_load`, :mod:`~bot.repo_settings.checks`
and :mod:`~bot.repo_settings.sections`), :mod:`~bot.repo_settings.problems` (their wording and the PR
comment) and :mod:`~bot.repo_settings.loader` (the cached read from GitHub).  Not to be confused with
:mod:`bot.settings`, the operator's settings from environment variables.
"""
