"""The coding agent: running Claude Code inside a PR's workspace over ``devpod ssh``, and one run per environment.

Running it: :mod:`~bot.settings.agent` holds :class:`AgentSettings`; :mod:`~bot.agent.remote`
builds the fixed remote script, the stdin that carries the secrets and the prompt, and the
signal command that names a run by its id; :mod:`~bot.agent.stream` parses Claude Code's
stream-json; :mod:`~bot.agent.progress` keeps and renders a bounded view of it;
:mod:`~bot.agent.run` runs and stops the agent (:func:`~bot.agent.run.run_agent`).
:mod:`~bot.agent.runs` is the service on top: at most one run per environment, with its check
run and comment (its parts: :mod:`~bot.agent.model`, :mod:`~bot.agent.prepare`,
:mod:`~bot.agent.view`), journalled in :mod:`~bot.agent.ledger` so that
:mod:`~bot.agent.recovery` can end what a restart interrupted. Modules import their siblings
directly; this package re-exports nothing.
"""
