"""Who may do what to a pull request's environment, decided in one place.

``permissions`` holds GitHub's permission levels and the one cached, coalesced lookup of a user's
permission on a repository; ``ask`` is the request policy every entry point (a comment, a check-run
button, a push, a pull request opening) calls before anything runs: it loads the repository's
settings, decides whether the pull request's code is trusted, checks the actor's permission and
pins approvals to a head commit, and answers accepted, refused or closed.
"""
