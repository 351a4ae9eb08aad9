"""Benchmarks for devenv-bot (run as scripts: ``.venv/bin/python bench/webhooks.py``); see README.md."""
