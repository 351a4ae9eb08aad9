"""Prebuilt devcontainer images per base branch (docs/prebuilds.md): when to build one, building it with
``devpod build`` on a Docker-capable builder, one ``devenv prebuild`` check run per build, and the ledger of
what was built from which commit.  :mod:`~bot.prebuilds.plan` holds the pure decisions (which branches,
whether a push changes the devcontainer, the image repository, what a start from a prebuild is called),
:mod:`~bot.prebuilds.ledger` what was built, :mod:`~bot.prebuilds.builder` the per-repository queue (newest
push of a branch wins, one build per repository at a time) and :mod:`~bot.prebuilds.checks` its check runs.
It sits below the environments, which read the ledger to say where an environment started from.
"""
