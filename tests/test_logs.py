"""Logs carry the delivery, repository and PR, and never a secret."""

from __future__ import annotations

import io
import json
import logging

from bot.core import logs


def test_json_logs_carry_context_and_hide_tokens():
    stream = io.StringIO()
    logs.setup("info", "json", stream=stream)
    logs.redactor.add("super-secret-webhook-value")
    try:
        with logs.context(delivery="abc-123", repo="octo/repo", pr=7):
            logging.getLogger("t").info("using token ghs_16C7e42F292c6912E7710c838347Ae178B4a and "
                                        "super-secret-webhook-value, url https://x-access-token:abcdefgh@github.com/o/r")
    finally:
        logging.getLogger().handlers.clear()
    line = json.loads(stream.getvalue().strip().splitlines()[-1])
    assert (line["delivery"], line["repo"], line["pr"]) == ("abc-123", "octo/repo", 7)
    assert "ghs_" not in line["msg"] and "super-secret" not in line["msg"] and "abcdefgh" not in line["msg"]
    assert line["msg"].count("***") == 3


def test_a_private_key_is_never_logged():
    key = "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEAx\n-----END RSA PRIVATE KEY-----"
    assert "MIIEow" not in logs.redactor(f"oops {key} done")
