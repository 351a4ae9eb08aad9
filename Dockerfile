# syntax=docker/dockerfile:1.7
#
# The devenv-bot image: the bot (installed from a wheel), the DevPod CLI, git and OpenSSH's client.
#
#   docker build --build-arg DEVPOD_SHA256=<sha256 of devpod-linux-amd64 at v0.6.15-hotfix.2> \
#                -t devenv-bot:0.1.0 .
#
# docs/operations.md says where the checksum comes from and how to deploy the image.
#
# The base is pinned by tag. For production builds pin it by digest as well, e.g.
#   --build-arg PYTHON_IMAGE=python:3.11-slim-bookworm@sha256:<digest>
# (`docker buildx imagetools inspect python:3.11-slim-bookworm` prints it): the tag moves with every
# Python patch release and Debian point release, the digest does not.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# --------------------------------------------------------------------------- wheels
# The project and every dependency as wheels; nothing of this stage but /wheels reaches the image.
FROM ${PYTHON_IMAGE} AS wheels
WORKDIR /src
COPY pyproject.toml README.md app.yml ./
COPY templates ./templates
COPY bot ./bot
COPY handlers ./handlers
# bot/resources links to app.yml and templates/ above, so they ship in the wheel as package data.
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

# --------------------------------------------------------------------------- devpod
# The DevPod CLI, pinned by version and by checksum.
#
# The checksum is not written here because it could not be read from a source we trust (DevPod
# publishes no checksum file we could consult, and a digest copied from elsewhere would be for
# another version): take the sha256 of the release asset devpod-linux-<arch> of DEVPOD_VERSION, as
# checked by you once, and pass it with --build-arg DEVPOD_SHA256=... The build fails when it is
# empty or does not match, never silently.
#
# No kubectl is installed: since v0.6.14 `devpod provider add kubernetes` uses the provider built
# into the devpod binary, whose in-tree driver (pkg/driver/kubernetes) talks to the API server
# through client-go; only the external devpod-provider-kubernetes shells out to kubectl
# (../shared/devpod/CONTRACT.md, "Key point about which provider you get" and §5.0).
FROM ${PYTHON_IMAGE} AS devpod
ARG DEVPOD_VERSION=v0.6.15-hotfix.2
ARG DEVPOD_SHA256=""
# Set by BuildKit from --platform (amd64 or arm64); the checksum must be the one of that asset.
ARG TARGETARCH=amd64
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
RUN if [ -z "${DEVPOD_SHA256}" ]; then \
      echo "DEVPOD_SHA256 is empty: pass --build-arg DEVPOD_SHA256=<sha256 of devpod-linux-${TARGETARCH} ${DEVPOD_VERSION}>" >&2; \
      exit 1; \
    fi \
 && python3 -c 'import sys, urllib.request; urllib.request.urlretrieve(sys.argv[1], sys.argv[2])' \
      "https://github.com/loft-sh/devpod/releases/download/${DEVPOD_VERSION}/devpod-linux-${TARGETARCH}" /tmp/devpod \
 && echo "${DEVPOD_SHA256}  /tmp/devpod" | sha256sum --check --strict - \
 && install -m 0755 /tmp/devpod /usr/local/bin/devpod

# --------------------------------------------------------------------------- runtime
FROM ${PYTHON_IMAGE}
ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="devenv-bot" \
      org.opencontainers.image.description="A GitHub App that gives every pull request its own development environment on Kubernetes, driven by DevPod." \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.source="https://github.com/devenv-bot/devenv-bot" \
      org.opencontainers.image.licenses="MIT" \
      org.opencontainers.image.base.name="docker.io/library/python:3.11-slim-bookworm"

SHELL ["/bin/bash", "-o", "pipefail", "-c"]

# git: DevPod clones the PR on the bot's host (the Kubernetes provider runs its agent locally,
# CONTRACT §1.2). openssh-client: `ssh <id>.devpod` through the generated config (CONTRACT §3).
# tini: PID 1 that reaps the grandchildren DevPod leaves behind (git, ssh) and forwards SIGTERM.
# Versions are not pinned: Debian drops superseded versions from its archive, so an exact pin
# breaks the build at the next security update; the image digest is what a deployment pins.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates git openssh-client tini \
 && rm -rf /var/lib/apt/lists/*

# The bot, from the wheels of the first stage (bind-mounted: they never become a layer).
RUN --mount=type=bind,from=wheels,source=/wheels,target=/wheels \
    pip install --no-cache-dir --no-index --find-links=/wheels "devenv-bot==${VERSION}"

COPY --from=devpod /usr/local/bin/devpod /usr/local/bin/devpod

# A fixed non-root UID, so Kubernetes' runAsNonRoot can check it (deploy/base/deployment.yaml).
RUN groupadd --system --gid 10001 devenv \
 && useradd --system --uid 10001 --gid 10001 --home-dir /home/devenv --shell /usr/sbin/nologin devenv \
 && install -d -o 10001 -g 10001 -m 0700 /home/devenv /var/lib/devenv-bot

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/home/devenv \
    DEVENV_STATE_DIR=/var/lib/devenv-bot \
    DEVPOD_BIN=/usr/local/bin/devpod \
    PORT=3000

# The journal of environments, the seen deliveries and DEVPOD_HOME (CONTRACT §4.5): lose it and
# the bot forgets every workspace (docs/operations.md, "The state directory").
VOLUME ["/var/lib/devenv-bot"]
WORKDIR /var/lib/devenv-bot
USER 10001:10001
EXPOSE 3000

HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
  CMD ["python3", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:3000/healthz', timeout=4)"]

ENTRYPOINT ["/usr/bin/tini", "--"]
CMD ["devenv-bot", "serve"]
