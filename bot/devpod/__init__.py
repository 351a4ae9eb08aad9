"""DevPod, one boundary with one surface: ``from bot import devpod``, then ``devpod.up_argv(...)``.

Everything that decides *what* to run or *what the output means* is a pure function of
its arguments, tested with tables and literals from ``../shared/devpod/CONTRACT.md``:
argv builders (:mod:`~bot.devpod.argv`), output parsers and the log-line model
(:mod:`~bot.devpod.parse`), workspace ids and label values (:mod:`~bot.devpod.ids`) and
secret masking (:mod:`~bot.devpod.masking`). The I/O is :func:`run`
(:mod:`~bot.devpod.process`), which executes one argv list in a minimal environment and its
own process group, with a timeout and every line masked; :mod:`~bot.devpod.credentials`
serves the clone token to DevPod's git through an askpass helper (:mod:`~bot.devpod.askpass`) so
it never sits in DevPod's environment, and scrubs DEVPOD_HOME after each run
(:mod:`~bot.devpod.scrub`).
:class:`DevPodSettings` (:mod:`~bot.settings.devpod`) says which binary, state directory,
provider options and time limits to use. This module lists the public names; the
submodules do not import it.
"""

from bot.devpod.argv import (
    DEVPOD_VERSION,
    HARDENED_CONTEXT_OPTIONS,
    build_argv,
    context_harden_argv,
    delete_argv,
    docker_provider_argv,
    ide_options,
    list_argv,
    parse_exit_marker,
    provider_add_argv,
    provider_list_argv,
    provider_options,
    provider_set_options_argv,
    ssh_command_argv,
    ssh_config_path,
    status_argv,
    stop_argv,
    up_argv,
    version_argv,
    wrap_with_exit_marker,
)
from bot.devpod.credentials import NONCE_ENV, PR_CLONE_ASKS, SOCKET_ENV, GitAccess
from bot.devpod.ids import ID_MAX_LEN, label_value, pr_source, workspace_id
from bot.devpod.masking import Masker
from bot.devpod.parse import (
    LogLine,
    WorkspaceState,
    WorkspaceStatus,
    likely_cause,
    meaningful_errors,
    parse_list,
    parse_log_line,
    parse_provider_list,
    parse_status,
    phase_of,
    workspace_missing,
)
from bot.devpod.process import (
    RunResult,
    build_env,
    checked_out_commit,
    content_dir,
    prepare_dirs,
    remove_agent_leftovers,
    run,
)
from bot.settings.devpod import DevPodSettings

__all__ = [
    "DEVPOD_VERSION",
    "HARDENED_CONTEXT_OPTIONS",
    "ID_MAX_LEN",
    "NONCE_ENV",
    "PR_CLONE_ASKS",
    "SOCKET_ENV",
    "DevPodSettings",
    "GitAccess",
    "LogLine",
    "Masker",
    "RunResult",
    "WorkspaceState",
    "WorkspaceStatus",
    "build_argv",
    "build_env",
    "docker_provider_argv",
    "checked_out_commit",
    "content_dir",
    "context_harden_argv",
    "delete_argv",
    "ide_options",
    "label_value",
    "list_argv",
    "likely_cause",
    "meaningful_errors",
    "parse_exit_marker",
    "parse_list",
    "parse_log_line",
    "parse_provider_list",
    "parse_status",
    "phase_of",
    "pr_source",
    "prepare_dirs",
    "remove_agent_leftovers",
    "provider_add_argv",
    "provider_list_argv",
    "provider_options",
    "provider_set_options_argv",
    "run",
    "ssh_command_argv",
    "ssh_config_path",
    "status_argv",
    "stop_argv",
    "up_argv",
    "version_argv",
    "workspace_id",
    "workspace_missing",
    "wrap_with_exit_marker",
]
