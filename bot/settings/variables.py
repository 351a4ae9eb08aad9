"""The table of every environment variable devenv-bot reads: name, type, default, meaning.

This is the one place a variable is declared. The sections (:mod:`bot.settings.config` and
the modules beside it) read their values through a :class:`~bot.settings.reader.Reader`, and
the README's "Configuration" table is rendered from :data:`SECTIONS`
(:mod:`bot.settings.readme`; ``tests/test_config.py`` checks that the two agree). Defaults are
written as an operator would write them and parsed by the variable's own type, so the README
shows exactly what the code uses.
"""

from __future__ import annotations

from typing import Any

from bot.settings import kinds
from bot.settings import values as v
from bot.settings.reader import Var

# --------------------------------------------------------------------------- the GitHub App

APP_ID = Var("APP_ID", kinds.AppId(), None, "the GitHub App's ID (shown on its settings page), or its client ID `Iv…`")
PRIVATE_KEY = Var("PRIVATE_KEY", v.Secret(strip=False, spaces=True, one_line=False), None,
                  "the App's PEM private key (`\\n`-escaped on one line is fine); checked at start-up")
PRIVATE_KEY_PATH = Var("PRIVATE_KEY_PATH", v.FilePath(), None, "the App's `.pem` file, instead of `PRIVATE_KEY`")
WEBHOOK_SECRET = Var("WEBHOOK_SECRET", v.Secret(strip=False, spaces=True, one_line=False), None,
                     "the webhook secret; unsigned deliveries are always refused")
GITHUB_CLIENT_ID = Var("GITHUB_CLIENT_ID", v.Text(), None,
                       "the App's OAuth client ID (written by the setup flow; needed for sign-in to previews)")
GITHUB_CLIENT_SECRET = Var("GITHUB_CLIENT_SECRET", v.Secret(strip=False, spaces=True, one_line=False), None,
                           "the App's OAuth client secret, likewise")
GHE_HOST = Var("GHE_HOST", kinds.BareHost(), None,
               "GitHub Enterprise Server's host: REST at `{protocol}://{host}/api/v3`")
GHE_PROTOCOL = Var("GHE_PROTOCOL", v.Choice("https", "http", hint="{name}={value!r} must be 'https' "
                                            "(or 'http' for a local test server)"), "https",
                   "the scheme of `GHE_HOST`")

# --------------------------------------------------------------------------- the server

WEBHOOK_PATH = Var("WEBHOOK_PATH", v.Text("/.*", "a path starting with '/', e.g. /api/github/webhooks"),
                   "/api/github/webhooks", "where GitHub posts deliveries")
HOST = Var("HOST", v.Text(), "0.0.0.0", "the address to listen on")
PORT = Var("PORT", v.Port(), "3000", "the port to listen on (`0` picks a free one)")
PUBLIC_URL = Var("DEVENV_PUBLIC_URL", v.Url("https://devenv.example.com"), None,
                 "the bot's public URL: in the app manifest, and where sign-in to previews happens",
                 shown="the address the setup page is opened on")
LOG_LEVEL = Var("LOG_LEVEL", v.Choice("debug", "info", "warning", "error", "critical",
                                      aliases={"trace": "debug", "fatal": "critical", "warn": "warning"}),
                "info", "`debug`, `info`, `warning`, `error` or `critical`")
LOG_FORMAT = Var("LOG_FORMAT", v.Choice("json", "human", aliases={"pretty": "human"},
                                        hint="{name}={value!r} must be 'json' or 'human'"),
                 "human", "`json` for one JSON object per line")
STATE_DIR = Var("DEVENV_STATE_DIR", v.FilePath(), "state", "the journal of environments and DevPod's home")
ENV_FILE = Var("DEVENV_ENV_FILE", v.FilePath(), ".env",
               "the file of settings read at start-up (the environment wins over it); the setup flow writes the "
               "App's credentials there")
SHUTDOWN_GRACE = Var("DEVENV_SHUTDOWN_GRACE", v.Duration(), "25", "how long work may finish on SIGTERM")
WEBHOOK_BODY_BUDGET = Var("DEVENV_WEBHOOK_BODY_BUDGET", v.Integer(1, unit=" of bytes"), "67108864",
                          "bytes of webhook request bodies held at once across all connections (64 MB); a delivery "
                          "beyond it gets 503 and GitHub shows it as failed")
READ_TIMEOUT = Var("DEVENV_READ_TIMEOUT", v.Duration(positive=True), "75",
                   "the longest a client may take to send a request's headers (or a delivery its body); idle "
                   "keep-alive connections close after it too, so keep it above a proxy's (nginx: 60 s)")
MAX_CONNECTIONS = Var("DEVENV_MAX_CONNECTIONS", v.Integer(1), "1000",
                      "connections kept open at once; a new one beyond it closes the oldest idle one")

# --------------------------------------------------------------------------- the first run

TRUSTED_PROXIES = Var("DEVENV_TRUSTED_PROXIES", v.Networks(), None,
                      "proxies (addresses or CIDR networks, comma-separated) whose `X-Forwarded-Proto` and "
                      "`X-Forwarded-Host` the setup page believes")
CREDENTIALS_SECRET = Var("DEVENV_CREDENTIALS_SECRET",
                         v.Text(rf"(?:{v.DNS_LABEL}/)?{v.DNS_LABEL}(?:\.{v.DNS_LABEL})*",
                                "a Kubernetes Secret's name, or namespace/name"), None,
                         "the Kubernetes Secret (`name` or `namespace/name`) the setup flow writes the App's "
                         "credentials to, instead of `DEVENV_ENV_FILE`", shown="— (the `.env` file)")

# --------------------------------------------------------------------------- GitHub requests

WRITES_PER_MINUTE = Var("DEVENV_WRITES_PER_MINUTE", v.Number(), "60",
                        "content-creating GitHub requests per minute and installation (GitHub allows about 80)")
WRITE_BURST = Var("DEVENV_WRITE_BURST", v.Integer(1), "10", "how many of those may go at once")
MAX_RETRIES = Var("DEVENV_MAX_RETRIES", v.Integer(0), "4", "retries of a 5xx or connection error")
RETRY_BACKOFF = Var("DEVENV_RETRY_BACKOFF", v.Duration(), "1", "the first back-off before a retry, doubled each try")
MAX_RATE_WAIT = Var("DEVENV_MAX_RATE_WAIT", v.Duration(), "900",
                    "the longest wait for a rate limit to reset before giving up")

# --------------------------------------------------------------------------- environments

COMMAND_PREFIX = Var("DEVENV_COMMAND_PREFIX", v.Text(r"/\S*", "a word starting with '/', without spaces"),
                     "/devenv", "the slash-command prefix")
MAX_CONCURRENT_OPS = Var("DEVENV_MAX_CONCURRENT_OPS", v.Integer(1), "4",
                         "DevPod processes at once (a fair queue beyond that)")
PUBLISH_INTERVAL = Var("DEVENV_PUBLISH_INTERVAL", v.Duration(), "3",
                       "the least time between two edits of one check run or comment")
SYNC_DEBOUNCE = Var("DEVENV_SYNC_DEBOUNCE", v.Duration(), "5",
                    "quiet time after a push before the environment follows it")
IDLE_SWEEP_INTERVAL = Var("DEVENV_IDLE_SWEEP_INTERVAL", v.Duration(), "60",
                          "how often idle environments are stopped and long-unused ones deleted (`idle_stop`, "
                          "`delete_after` in `.github/devenv.yml`; `0` turns it off)")
CATCHUP_INTERVAL = Var("DEVENV_CATCHUP_INTERVAL", v.Duration(), "600",
                       "how often the bot asks GitHub for each repository's open PRs (one conditional call per "
                       "repository) to catch a PR closed, turned draft or pushed to while no webhook came; it "
                       "also runs at start-up (`0`: only then)")

# --------------------------------------------------------------------------- Replicas

STATE_BACKEND = Var("DEVENV_STATE_BACKEND", v.Choice("file", "kubernetes",
                                                     hint="{name}={value!r} must be 'file' or 'kubernetes'"),
                    "file", "`file`: one process keeps its state in `DEVENV_STATE_DIR`; `kubernetes`: the state "
                    "lives in the bot's namespace (a `DevEnvironment` custom resource, Leases, Secrets), so several "
                    "replicas can run ([docs/operations.md](docs/operations.md))")
REPLICA_ID = Var("DEVENV_REPLICA_ID", v.Text(), None,
                 "this replica's name in Leases and records (unique among the replicas)",
                 shown="the host name (a pod's name), then the process id")
LEASE_DURATION = Var("DEVENV_LEASE_DURATION", v.Duration(positive=True), "15",
                     "how long a replica's Lease (on a workspace, or as leader) lasts without renewal; another "
                     "replica takes over after it")

# --------------------------------------------------------------------------- DevPod

_PROVIDER = r"[a-z0-9][a-z0-9-]*"
DEVPOD_BIN = Var("DEVPOD_BIN", v.Text(), "devpod", "the DevPod binary")
DEVPOD_HOME = Var("DEVPOD_HOME", v.FilePath(absolute=True), None, "DevPod's state (an absolute path)",
                  shown="`<DEVENV_STATE_DIR>/devpod`")
PROVIDER = Var("DEVENV_PROVIDER", v.Text(_PROVIDER, "a provider name like 'kubernetes'"), "kubernetes",
               "the DevPod provider")
DEVPOD_CONTEXT = Var("DEVENV_DEVPOD_CONTEXT", v.Text(_PROVIDER, "lower-case letters, digits or '-'"), "default",
                     "the DevPod context the bot's workspaces live in")
SSH_CONFIG_DIR = Var("DEVENV_SSH_CONFIG_DIR", v.FilePath(), None, "where the ssh config file of each workspace goes",
                     shown="`<DEVPOD_HOME>/ssh`")
DEVPOD_USER_HOME = Var("DEVENV_DEVPOD_USER_HOME", v.FilePath(), None,
                       "the HOME DevPod runs with; never the bot's own, so its `~/.docker`, `~/.ssh` and "
                       "`~/.gitconfig` stay out of workspaces", shown="`<DEVPOD_HOME>/user-home`")
PATH = Var("PATH", v.Text(), "/usr/local/bin:/usr/bin:/bin", "the PATH DevPod runs with (it runs `git` on the bot's host)")
LABEL_PREFIX = Var("DEVENV_LABEL_PREFIX", v.DnsName("a DNS subdomain like 'devenv-bot.dev'"), "devenv-bot.dev",
                   "the prefix of the labels on workspace pods and the bot's Kubernetes objects")
UP_TIMEOUT = Var("DEVENV_UP_TIMEOUT", v.Duration(positive=True), "30m",
                 "wall-clock limit of `devpod up` (SIGTERM, then SIGKILL)")
STOP_TIMEOUT = Var("DEVENV_STOP_TIMEOUT", v.Duration(positive=True), "5m", "likewise for `devpod stop`")
DELETE_TIMEOUT = Var("DEVENV_DELETE_TIMEOUT", v.Duration(positive=True), "5m", "likewise for `devpod delete`")
STATUS_TIMEOUT = Var("DEVENV_STATUS_TIMEOUT", v.Duration(positive=True), "60", "likewise for `devpod status`")
SSH_TIMEOUT = Var("DEVENV_SSH_TIMEOUT", v.Duration(positive=True), "10m",
                  "likewise for one `devpod ssh` command (the agent's run has its own limit)")
PROVIDER_TIMEOUT = Var("DEVENV_PROVIDER_TIMEOUT", v.Duration(positive=True), "2m",
                       "likewise for `devpod provider` and `context` commands")
KILL_GRACE = Var("DEVENV_KILL_GRACE", v.Duration(positive=True), "10", "the time between SIGTERM and SIGKILL")
IDE_DOWNLOAD_AMD64 = Var("DEVENV_IDE_DOWNLOAD_AMD64", kinds.DownloadUrl(), None,
                         "where workspaces on amd64 nodes download openvscode-server (a `.tar.gz` like the release's "
                         "`openvscode-server-v1.84.2-linux-x64.tar.gz`); set it when they cannot reach github.com "
                         "(air-gapped clusters, GitHub Enterprise Server)", shown="github.com's release")
IDE_DOWNLOAD_ARM64 = Var("DEVENV_IDE_DOWNLOAD_ARM64", kinds.DownloadUrl(), None,
                         "likewise for arm64 nodes (`…-linux-arm64.tar.gz`)", shown="github.com's release")

# --------------------------------------------------------------------------- Kubernetes

NAMESPACE = Var("DEVENV_NAMESPACE", v.DnsName("a Kubernetes namespace name", dots=False, max_len=63), None,
                "the namespace of the workspaces (and of their Services and Ingresses)", shown="`devpod`")
KUBECONFIG = Var("KUBECONFIG", v.FilePath(single=True), None,
                 "a kubeconfig file for DevPod and the bot's own Kubernetes client (one file, no list)",
                 shown="in-cluster service account, else `~/.kube/config`")
KUBE_CONTEXT = Var("DEVENV_KUBE_CONTEXT", v.Text(), None, "the kubeconfig context to use",
                   shown="the kubeconfig's current context")
DISK_SIZE = Var("DEVENV_DISK_SIZE", v.Quantity(), None, "the workspace volume's size, e.g. `20Gi`",
                shown="DevPod's (`10Gi`)")
STORAGE_CLASS = Var("DEVENV_STORAGE_CLASS", v.DnsName("a storage class name"), None,
                    "the storage class of workspace volumes", shown="the cluster's default")
RESOURCES = Var("DEVENV_RESOURCES", kinds.ResourceList(), None,
                "requests and limits of workspace pods, e.g. `requests.cpu=500m,limits.memory=4Gi`")
NODE_SELECTOR = Var("DEVENV_NODE_SELECTOR", kinds.NodeSelector(), None, "node labels for workspace pods, `k=v,k2=v2`")
SERVICE_ACCOUNT = Var("DEVENV_SERVICE_ACCOUNT", v.DnsName("a service account name"), None,
                      "the service account of workspace pods")
POD_TIMEOUT = Var("DEVENV_POD_TIMEOUT", v.GoDuration(), None, "how long DevPod waits for a pod to start (Go duration)",
                  shown="DevPod's (`10m`)")
ARCHITECTURE = Var("DEVENV_ARCHITECTURE", v.Choice("amd64", "arm64", hint="{name} must be amd64 or arm64, got {value!r}"),
                   None, "the nodes' architecture; set it when the bot may not list nodes")

# --------------------------------------------------------------------------- links

PREVIEW_DOMAIN = Var("DEVENV_PREVIEW_DOMAIN", v.DnsName("a DNS name like preview.example.com", min_dots=1, max_len=189,
                                                        normalise=True), None,
                     "domain of the browser links (`code-<id>.<domain>`); turns on links and access control")
AUTH_URL = Var("DEVENV_AUTH_URL", v.Url("", plain=True), None,
               "the bot's forward-auth URL as the ingress controller reaches it (not needed with a Cloudflare Tunnel)")
AUTH_SIGNIN = Var("DEVENV_AUTH_SIGNIN", v.Url("", plain=True), None,
                  "the bot's login URL for ingress-nginx", shown="`<DEVENV_PUBLIC_URL>/auth/login`")
BOT_SERVICE = Var("DEVENV_BOT_SERVICE", v.NamePort("the bot's Service"), None,
                  "the bot's Service in the workspaces' namespace, `name:port`",
                  shown="— (`devenv-bot:3000` with a Cloudflare Tunnel)")
ROUTER = Var("DEVENV_ROUTER", v.Choice("ingress-nginx", "traefik", hint="{name} must be one of ingress-nginx, traefik, "
                                       "got {value!r} (a Gateway API backend is not written yet)"), "ingress-nginx",
             "the ingress controller in front of the previews")
INGRESS_CLASS = Var("DEVENV_INGRESS_CLASS", v.DnsName("a Kubernetes object name"), None, "the Ingresses' class",
                    shown="per router (`nginx`, `traefik`)")
TLS_SECRET = Var("DEVENV_TLS_SECRET", v.DnsName("a Kubernetes object name"), None,
                 "a TLS Secret for the preview hosts (a wildcard certificate)")
HOST_TEMPLATE = Var("DEVENV_HOST_TEMPLATE", kinds.HostTemplate(), "{port}-{id}",
                    "the first label of a preview host; one label deep, so a wildcard certificate covers it")
PREVIEW_SCHEME = Var("DEVENV_PREVIEW_SCHEME", v.Choice("https", "http", hint="{name} must be http or https, "
                                                       "got {value!r}"), None,
                     "the links' scheme; `http` only for local tests",
                     shown="`https` (`http` for sign-in when `DEVENV_PUBLIC_URL` is http)")
IDE_PERMISSION = Var("DEVENV_IDE_PERMISSION", v.PERMISSION, "write", "who may open the IDE (a shell in the workspace)")
PREVIEW_PERMISSION = Var("DEVENV_PREVIEW_PERMISSION", v.PERMISSION, "read", "who may open app previews")

# --------------------------------------------------------------------------- access

SESSION_SECRET = Var("DEVENV_SESSION_SECRET",
                     v.Secret("at least 32 characters; generate one with: python -c 'import secrets; "
                              "print(secrets.token_hex(32))'", min_len=32, strip=False, spaces=True, one_line=False),
                     None, "the key that signs sign-in cookies (at least 32 characters)",
                     shown="derived from the webhook secret (required when that has under 20 characters)")
SESSION_TTL = Var("DEVENV_SESSION_TTL", v.Duration(positive=True), "8h", "the life of the sign-in on the bot's host")
ACCESS_COOKIE_TTL = Var("DEVENV_ACCESS_COOKIE_TTL", v.Duration(positive=True), "8h", "the life of a preview host's cookie")
PERMISSION_TTL = Var("DEVENV_PERMISSION_TTL", v.Duration(positive=True), "60",
                     "how long a GitHub permission answer is reused")

# --------------------------------------------------------------------------- Cloudflare Tunnel

_HEX_ID = r"[0-9a-f]{32}"
TUNNEL_ID = Var("DEVENV_CLOUDFLARE_TUNNEL_ID",
                v.Text(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", "the tunnel's UUID", lower=True),
                None, "turns on tunnel mode, for clusters without an ingress controller")
ACCOUNT_ID = Var("DEVENV_CLOUDFLARE_ACCOUNT_ID", v.Text(_HEX_ID, "a 32-character hexadecimal id", lower=True), None,
                 "the account that owns the tunnel")
ZONE_ID = Var("DEVENV_CLOUDFLARE_ZONE_ID", v.Text(_HEX_ID, "a 32-character hexadecimal id", lower=True), None,
              "the zone of `DEVENV_PREVIEW_DOMAIN`")
API_TOKEN = Var("DEVENV_CLOUDFLARE_API_TOKEN", v.Secret("an API token without spaces"), None,
                "an API token with Account: Cloudflare Tunnel Edit and Zone: DNS Edit")
API_URL = Var("DEVENV_CLOUDFLARE_API_URL", v.Url("https://api.cloudflare.com/client/v4", api=True),
              "https://api.cloudflare.com/client/v4", "the API's base URL")
AUTH_PROXY = Var("DEVENV_CLOUDFLARE_AUTH_PROXY", v.Url("", origin=True), None,
                 "the bot's authenticating proxy as cloudflared reaches it; unset, the IDE is never published")
PROXY_PREVIEWS = Var("DEVENV_CLOUDFLARE_PROXY_PREVIEWS", v.Flag(), "false", "route the app ports through the proxy too")

# --------------------------------------------------------------------------- the SSH gateway

SSH_PORT = Var("DEVENV_SSH_PORT", v.Port(), None,
               "the SSH gateway's port (`ssh -p <port> <login>+<workspace>@<host>`; `0` picks a free one); the "
               "gateway is off unless set", shown="— (off)")
SSH_HOST = Var("DEVENV_SSH_HOST", v.DnsName("a DNS name like ssh.example.com"), None,
               "the host name reviewers `ssh` to (shown in the PR comment); needed with `DEVENV_SSH_PORT`")
SSH_PUBLIC_PORT = Var("DEVENV_SSH_PUBLIC_PORT", v.Port(), None,
                      "the port reviewers connect to, when a load balancer maps another one to `DEVENV_SSH_PORT`",
                      shown="`DEVENV_SSH_PORT`")
SSH_PERMISSION = Var("DEVENV_SSH_PERMISSION", v.PERMISSION, "write",
                     "who may open a shell through the gateway (`write` or `admin`: a shell runs code)")
SSH_HOST_KEY_SECRET = Var("DEVENV_SSH_HOST_KEY_SECRET",
                          v.Text(rf"(?:{v.DNS_LABEL}/)?{v.DNS_LABEL}(?:\.{v.DNS_LABEL})*",
                                 "a Kubernetes Secret's name, or namespace/name"), "devenv-bot-ssh-host-key",
                          "the Kubernetes Secret (`name` or `namespace/name`) that keeps the gateway's host key, used "
                          "when `DEVENV_CREDENTIALS_SECRET` is set (else `<DEVENV_STATE_DIR>/ssh/host_ed25519`)")
SSH_KEY_LINK_TTL = Var("DEVENV_SSH_KEY_LINK_TTL", v.Duration(positive=True), str(30 * 86400),
                       "how long a key linked to a GitHub login through the sign-in is remembered (seconds)")

# --------------------------------------------------------------------------- the coding agent

AGENT_API_KEY = Var("DEVENV_AGENT_API_KEY", v.Secret("one non-empty line", spaces=True), None,
                    "the agent's API key", shown="`ANTHROPIC_API_KEY`")
ANTHROPIC_API_KEY = Var("ANTHROPIC_API_KEY", v.Secret("one non-empty line", spaces=True), None,
                        "the agent's API key when `DEVENV_AGENT_API_KEY` is unset")
AGENT_COMMAND = Var("DEVENV_AGENT_COMMAND", kinds.CommandLine(), "claude -p --output-format stream-json --verbose",
                    "the agent's command line (split as a shell would)")
AGENT_TIMEOUT = Var("DEVENV_AGENT_TIMEOUT", v.Duration(positive=True), "30m", "wall-clock limit of one run")
AGENT_MAX_PROMPT_BYTES = Var("DEVENV_AGENT_MAX_PROMPT_BYTES", v.Integer(1, unit=" of bytes"), "16000",
                             "the longest prompt")
AGENT_ENV_NAME = Var("DEVENV_AGENT_ENV_NAME", kinds.EnvName(), "ANTHROPIC_API_KEY",
                     "the variable the key reaches the agent as (`CLAUDE_CODE_OAUTH_TOKEN` for a `claude setup-token`)")
AGENT_CANCEL_GRACE = Var("DEVENV_AGENT_CANCEL_GRACE", v.Duration(positive=True), "30",
                         "the time between SIGINT and SIGTERM when a run is stopped")
AGENT_PROGRESS_INTERVAL = Var("DEVENV_AGENT_PROGRESS_INTERVAL", v.Duration(), "5",
                              "the least time between two updates of the agent's check run (`0`: every event)")

# --------------------------------------------------------------------------- prebuilds

PREBUILD_REPOSITORY = Var(
    "DEVENV_PREBUILD_REPOSITORY", v.Text(r"[a-z0-9][a-z0-9.\-]*(:[0-9]+)?(/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)+",
                                         "an image repository such as ghcr.io/acme/devenv-prebuilds"), None,
    "the image repository prebuilt devcontainers are pushed to (`<it>/<owner>/<repo>:<hash>`); turns prebuilds on "
    "(the registry must accept nested paths, and the bot's host and the cluster's nodes must be able to pull)",
    shown="— (off)")
PREBUILD_DOCKER_HOST = Var("DEVENV_PREBUILD_DOCKER_HOST", v.Text(r"(unix|tcp|ssh)://\S+",
                                                                 "tcp://localhost:2375 or unix:///var/run/docker.sock"),
                           None, "how `devpod build` reaches a Docker daemon (`DOCKER_HOST`): the DinD sidecar "
                           "(`tcp://localhost:2375`), a remote daemon or a build host (`ssh://builder`)",
                           shown="Docker's (`unix:///var/run/docker.sock`)")
PREBUILD_DOCKER_CONFIG = Var("DEVENV_PREBUILD_DOCKER_CONFIG", v.FilePath(absolute=True), None,
                             "a directory holding the registry's `config.json` (the deployment's Secret, mounted); "
                             "given as `DOCKER_CONFIG` to `devpod build` only, never to `up` or a workspace")
PREBUILD_TIMEOUT = Var("DEVENV_PREBUILD_TIMEOUT", v.Duration(positive=True), "1h",
                       "wall-clock limit of one `devpod build`")

#: The table, in the README's order: (section title, its variables).
SECTIONS: tuple[tuple[str, tuple[Var[Any], ...]], ...] = (
    ("GitHub App", (APP_ID, PRIVATE_KEY, PRIVATE_KEY_PATH, WEBHOOK_SECRET, GITHUB_CLIENT_ID, GITHUB_CLIENT_SECRET,
                    GHE_HOST, GHE_PROTOCOL)),
    ("Server", (WEBHOOK_PATH, HOST, PORT, PUBLIC_URL, LOG_LEVEL, LOG_FORMAT, STATE_DIR, ENV_FILE, SHUTDOWN_GRACE,
                WEBHOOK_BODY_BUDGET, READ_TIMEOUT, MAX_CONNECTIONS)),
    ("First run (the setup page)", (TRUSTED_PROXIES, CREDENTIALS_SECRET)),
    ("GitHub requests", (WRITES_PER_MINUTE, WRITE_BURST, MAX_RETRIES, RETRY_BACKOFF, MAX_RATE_WAIT)),
    ("Environments", (COMMAND_PREFIX, MAX_CONCURRENT_OPS, PUBLISH_INTERVAL, SYNC_DEBOUNCE, IDLE_SWEEP_INTERVAL,
                      CATCHUP_INTERVAL)),
    ("Replicas ([docs/operations.md](docs/operations.md))", (STATE_BACKEND, REPLICA_ID, LEASE_DURATION)),
    ("DevPod", (DEVPOD_BIN, DEVPOD_HOME, PROVIDER, DEVPOD_CONTEXT, SSH_CONFIG_DIR, DEVPOD_USER_HOME, PATH, LABEL_PREFIX,
                UP_TIMEOUT, STOP_TIMEOUT, DELETE_TIMEOUT, STATUS_TIMEOUT, SSH_TIMEOUT, PROVIDER_TIMEOUT, KILL_GRACE,
                IDE_DOWNLOAD_AMD64, IDE_DOWNLOAD_ARM64)),
    ("Prebuilds ([docs/prebuilds.md](docs/prebuilds.md))",
     (PREBUILD_REPOSITORY, PREBUILD_DOCKER_HOST, PREBUILD_DOCKER_CONFIG, PREBUILD_TIMEOUT)),
    ("Kubernetes", (NAMESPACE, KUBECONFIG, KUBE_CONTEXT, DISK_SIZE, STORAGE_CLASS, RESOURCES, NODE_SELECTOR,
                    SERVICE_ACCOUNT, POD_TIMEOUT, ARCHITECTURE)),
    ("Links to the workspace ([docs/links.md](docs/links.md))",
     (PREVIEW_DOMAIN, AUTH_URL, AUTH_SIGNIN, BOT_SERVICE, ROUTER, INGRESS_CLASS, TLS_SECRET, HOST_TEMPLATE,
      PREVIEW_SCHEME, IDE_PERMISSION, PREVIEW_PERMISSION)),
    ("Sign-in to previews ([docs/access.md](docs/access.md))",
     (SESSION_SECRET, SESSION_TTL, ACCESS_COOKIE_TTL, PERMISSION_TTL)),
    ("Cloudflare Tunnel ([docs/cloudflare.md](docs/cloudflare.md))",
     (TUNNEL_ID, ACCOUNT_ID, ZONE_ID, API_TOKEN, API_URL, AUTH_PROXY, PROXY_PREVIEWS)),
    ("Coding agent ([docs/agent.md](docs/agent.md))",
     (AGENT_API_KEY, ANTHROPIC_API_KEY, AGENT_COMMAND, AGENT_TIMEOUT, AGENT_MAX_PROMPT_BYTES, AGENT_ENV_NAME,
      AGENT_CANCEL_GRACE, AGENT_PROGRESS_INTERVAL)),
    ("SSH gateway ([docs/ssh.md](docs/ssh.md))", (SSH_PORT, SSH_HOST, SSH_PUBLIC_PORT, SSH_PERMISSION,
                                                  SSH_HOST_KEY_SECRET, SSH_KEY_LINK_TTL)),
)

#: Every variable by name.
BY_NAME: dict[str, Var[Any]] = {var.name: var for _, section in SECTIONS for var in section}
