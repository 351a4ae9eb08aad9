"""devenv-bot's machinery: configuration, GitHub auth and client, the webhook server, DevPod.

Behaviour (what happens on which event) lives in :mod:`handlers`; every word a
human reads lives in ``templates/``.
"""
