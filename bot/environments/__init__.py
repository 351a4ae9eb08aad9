"""Per-PR environments: one DevPod workspace per pull request, kept in step with it.

The rest of the bot uses :class:`bot.environments.manager.EnvironmentManager` (the facade),
:class:`bot.environments.journal.PullInfo` (what a webhook says about a PR) and the state type and
predicates of :mod:`bot.environments.states`.  Behind the facade a request flows through
``queue`` (per-workspace slots, coalescing, the fair DevPod limiter) → ``executor`` (one operation
from start to end) → ``operations`` (one DevPod step, an outcome) → ``states`` (the transition
table) → ``links`` (browser links) → ``publishing`` (check runs and the sticky comment, rendered by
the pure ``report``); ``journal`` keeps the records on disk and ``reaper`` stops idle environments.
"""
