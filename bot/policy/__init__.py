"""Who may do what to a pull request's environment, decided in one place.

``ask`` is the request policy every entry point (a comment, a check-run button, a push, a pull
request opening) calls before anything runs: it loads the repository's settings, decides whether
the pull request's code is trusted, checks the actor's permission (GitHub's levels and the one
cached lookup live in :mod:`bot.github.permissions`, below the repository settings that also
need them) and pins approvals to a head commit, and answers accepted, refused or closed.
"""
