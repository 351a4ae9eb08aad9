"""The SSH gateway: reviewers reach a pull request's environment with plain OpenSSH, as themselves on GitHub.

An asyncssh server on its own port (``DEVENV_SSH_PORT``) takes ``ssh -p <port>
<login>+<workspace>@<host>``, accepts a key only when it is one of that GitHub user's public keys
and the user has the permission a shell needs on the pull request's repository, then bridges the
client's channels (shell, command, sftp, ``-L`` forwards) to the workspace over its own SSH
connection through ``devpod ssh --stdio``; the client never sees DevPod or the cluster.  The user
name grammar is :mod:`~bot.gateway.names`, the decision :mod:`~bot.gateway.identity`, the rate
limits :mod:`~bot.gateway.guard`, the keys (the host key in a Secret on Kubernetes) :mod:`~bot.gateway.keys`,
keys linked through the browser sign-in :mod:`~bot.gateway.links` and their page :mod:`~bot.gateway.link_page`,
the workspace side :mod:`~bot.gateway.upstream`, the sessions :mod:`~bot.gateway.sessions` and the
listener and its accounting :mod:`~bot.gateway.service`.  docs/ssh.md is the user's and operator's guide.
"""
