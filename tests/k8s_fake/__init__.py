"""A local fake of the Kubernetes API for the whole suite (see ``server.py``).

Use the ``kube`` fixture (``from tests.k8s_fake.fixtures import kube``) or
:class:`FakeKube` directly; point the official client at it with
``kubernetes.client.Configuration(host=fake.url)``. ``FakeKube(rbac=Policy...)`` also enforces
RBAC rules rendered from ``deploy/`` (``rbac.py``; tests/test_rbac.py).
"""

from .rbac import Policy, Request
from .server import Call, FakeKube
from .validation import KUBERNETES_VERSION, MIDDLEWARE_SCHEMA

__all__ = ["KUBERNETES_VERSION", "MIDDLEWARE_SCHEMA", "Call", "FakeKube", "Policy", "Request"]
