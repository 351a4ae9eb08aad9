"""The ``kube`` fixture: a fresh fake Kubernetes API per test.

    from tests.k8s_fake.fixtures import kube  # noqa: F401

At teardown it stops the server and fails the test if any object the code under test
sent was rejected as invalid (``FakeKube.errors``).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .server import FakeKube


@pytest.fixture
def kube() -> Iterator[FakeKube]:
    fake = FakeKube().start()
    try:
        yield fake
    finally:
        fake.close()
    fake.assert_valid()
