"""The command line: ``devenv-bot serve`` runs the app; ``devenv-bot receive`` replays one saved delivery."""

from __future__ import annotations

import argparse
import asyncio
import errno
import importlib.metadata
import json
import logging
import signal
import sys
import uuid
from collections.abc import Callable
from pathlib import Path

from aiohttp import web
from gidgethub import sansio

from bot.core import logs
from bot.gateway import keys
from bot.settings import config

log = logging.getLogger("bot")


async def serve(settings: config.Settings) -> bool:
    """Serve until SIGTERM/SIGINT (returns False) or until setup registered an app (returns True)."""
    from bot.app import BOT_KEY, make_app
    from bot.core.server import make_runner
    from bot.core.tasks import SHUTDOWN
    from bot.setup.routes import SETUP_KEY

    SHUTDOWN.reset()
    app = make_app(settings)
    stop = asyncio.Event()
    restart = False

    def registered(in_process: bool) -> None:
        nonlocal restart
        # In-process: reload the settings with the new credentials. Otherwise (a Kubernetes Secret) exit,
        # and the kubelet starts the container again with the Secret in its environment.
        restart = in_process
        # Let the browser receive its page before the listener goes away.
        asyncio.get_running_loop().call_later(0.5, stop.set)

    if settings.setup_mode:
        app[SETUP_KEY].on_registered = registered
    runner = make_runner(app, settings, handle_signals=False, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, settings.host, settings.port, shutdown_timeout=settings.shutdown_grace)
    try:
        await site.start()
    except OSError as exc:
        await runner.cleanup()  # close what start-up opened (GitHub session, DevPod, Kubernetes)
        raise ListenError(settings.host, settings.port, exc) from None
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    server = getattr(site, "_server", None)  # aiohttp keeps the listening server private
    bound = [s.getsockname() for s in getattr(server, "sockets", None) or []]
    port = bound[0][1] if bound else settings.port
    if settings.setup_mode:
        log.warning("no GitHub App configured: %s", _setup_address(settings, port, app[SETUP_KEY].page_url))
    else:
        log.info("devenv-bot listening on %s:%s, webhooks at %s", settings.host, port, settings.webhook_path)
    print(f"devenv-bot ready on port {port}", flush=True)
    await stop.wait()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.remove_signal_handler(sig)
    log.info("shutting down: no new deliveries, draining running work (up to %.0fs)", settings.shutdown_grace)
    SHUTDOWN.begin(settings.shutdown_grace)  # Kubernetes calls from now on end within the grace
    bot = app[BOT_KEY]
    bot.tasks.accepting = False
    bot.readiness.started = False
    await site.stop()  # stop listening; requests in flight finish
    await runner.cleanup()  # on_cleanup drains background tasks within the grace period
    log.info("stopped cleanly")
    _abandon_blocked_calls()
    return restart


def _abandon_blocked_calls() -> None:
    """Say which Kubernetes calls are still blocked in their (daemon) threads: the process exits without
    them rather than hang past its grace (their work is journalled and resumed by the next start)."""
    from bot.cluster.kube import in_flight

    for what, seconds in in_flight():
        log.warning("exiting without waiting for a Kubernetes call still blocked after %.1fs: %s", seconds, what)


def _setup_address(settings: config.Settings, port: int, page_url: Callable[[str], str]) -> str:
    """Where the operator opens the setup page, with its one-time token (this line is the only place
    the token appears): never 0.0.0.0, which would end up in the App manifest."""
    if settings.public_url:
        return f"open {page_url(settings.public_url)} to register one"
    host = settings.host if settings.host not in ("0.0.0.0", "::", "") else "127.0.0.1"
    return (f"open {page_url(f'http://{host}:{port}')} to register one (GitHub cannot send webhooks to that address: "
            "set DEVENV_PUBLIC_URL to the address it can reach, or open the page through it)")


class ListenError(Exception):
    """The port cannot be listened on; the message says what to do."""

    def __init__(self, host: str, port: int, exc: OSError) -> None:
        why = "the address is already in use" if exc.errno == errno.EADDRINUSE else (exc.strerror or str(exc))
        hint = ("stop the other process or set PORT to a free port" if exc.errno == errno.EADDRINUSE
                else "check HOST and PORT")
        super().__init__(f"devenv-bot cannot listen on {host}:{port}: {why}; {hint}")


def _settings() -> config.Settings | None:
    """Load the configuration and set up logging; None (after saying why) if it is wrong."""
    try:
        settings = config.load()
    except config.ConfigError as exc:
        print(exc, file=sys.stderr)
        return None
    logs.setup(settings.log_level, settings.log_format)
    return settings


def cmd_serve(args: argparse.Namespace) -> int:
    while True:
        settings = _settings()
        if settings is None:
            return 2
        if args.port is not None:
            settings = _with(settings, port=args.port)
        try:
            if not asyncio.run(serve(settings)):
                return 0
        except ListenError as exc:
            print(exc, file=sys.stderr)
            return 2
        except keys.HostKeyUnavailable as exc:  # never serve another host key than the one users pinned
            print(f"devenv-bot cannot start the SSH gateway: {exc}", file=sys.stderr)
            return 1
        log.info("GitHub App registered: restarting with the new settings")


def _with(settings: config.Settings, **changes) -> config.Settings:
    import dataclasses

    return dataclasses.replace(settings, **changes)


async def receive(settings: config.Settings, event_name: str, payload: dict, delivery_id: str) -> int:
    from bot.services import build
    from handlers import ROUTERS

    bot = build(settings, ROUTERS)
    await bot.start()
    try:
        event = sansio.Event(payload, event=event_name, delivery_id=delivery_id)
        if not bot.dispatcher.handles(event):
            print(f"no handler listens to {event_name}"
                  f"{'.' + payload['action'] if isinstance(payload.get('action'), str) else ''}", file=sys.stderr)
            return 1
        failures = await bot.handle(event)
        await bot.tasks.join()
        if bot.environments is not None:
            await bot.environments.idle()
        return 1 if failures else 0
    finally:
        await bot.stop()


def dry_run(settings: config.Settings, event_name: str, payload: dict, delivery_id: str) -> int:
    """Say which handlers would act on the delivery and what they do, calling neither GitHub nor DevPod."""
    from bot.commands.grammar import Command, parse
    from bot.core.dispatch import Dispatcher
    from bot.core.metrics import Metrics
    from handlers import ROUTERS

    event = sansio.Event(payload, event=event_name, delivery_id=delivery_id)
    action = f".{payload['action']}" if isinstance(payload.get("action"), str) else ""
    callbacks = Dispatcher(ROUTERS, Metrics()).callbacks(event)
    if not callbacks:
        print(f"no handler listens to {event_name}{action}: nothing would happen")
        return 1
    print(f"{event_name}{action} (delivery {delivery_id}) would run:")
    for callback in callbacks:
        doc = (callback.__doc__ or "").strip().splitlines()
        print(f"  {callback.__module__}.{callback.__qualname__}: {doc[0] if doc else '(no description)'}")
    body = (payload.get("comment") or {}).get("body") if isinstance(payload.get("comment"), dict) else None
    if isinstance(body, str):
        parsed = parse(body, prefix=settings.command_prefix)
        if isinstance(parsed, Command):
            print(f"  the comment asks for: {settings.command_prefix} {parsed.verb}")
        else:
            print(f"  the comment holds no command the bot acts on ({type(parsed).__name__.lower()})")
    print("dry run: nothing was sent to GitHub or DevPod")
    return 0


def cmd_receive(args: argparse.Namespace) -> int:
    settings = _settings()
    if settings is None:
        return 2
    if not args.dry_run and settings.setup_mode:
        print("devenv-bot receive needs a registered app (APP_ID, PRIVATE_KEY, WEBHOOK_SECRET)", file=sys.stderr)
        return 2
    try:
        text = sys.stdin.read() if args.payload == "-" else Path(args.payload).read_text()
        payload = json.loads(text)
    except (OSError, ValueError) as exc:
        print(f"cannot read the payload {args.payload!r}: {exc}", file=sys.stderr)
        return 2
    if not isinstance(payload, dict):
        print("the payload must be a JSON object, as GitHub sends it", file=sys.stderr)
        return 2
    delivery = args.delivery or f"receive-{uuid.uuid4()}"
    if args.dry_run:
        return dry_run(settings, args.event, payload, delivery)
    return asyncio.run(receive(settings, args.event, payload, delivery))


def cmd_ssh_host_key(args: argparse.Namespace) -> int:
    """Print the SSH gateway's host key fingerprint (making the key if absent), to publish for users:
    the one the gateway serves, from its Kubernetes Secret when it keeps it there (docs/ssh.md)."""
    from bot.services import host_key_source

    settings = _settings()
    if settings is None:
        return 2
    try:
        key = asyncio.run(host_key_source(settings).load())
    except keys.HostKeyUnavailable as exc:
        print(exc, file=sys.stderr)
        return 1
    print(keys.fingerprint(key))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="devenv-bot", description="A GitHub App that gives every pull request its own development environment.",
        epilog="Configuration comes from environment variables (and .env); see the README.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {importlib.metadata.version('devenv-bot')}")
    sub = parser.add_subparsers(dest="command", required=True)
    p_serve = sub.add_parser("serve", help="run the GitHub App (webhooks, setup page, health, metrics)")
    p_serve.add_argument("--port", type=int, default=None, help="override PORT")
    p_serve.set_defaults(func=cmd_serve)
    p_recv = sub.add_parser("receive", help="run the handlers once on a saved webhook payload")
    p_recv.add_argument("--event", "-e", required=True, help="the X-GitHub-Event name, e.g. issue_comment")
    p_recv.add_argument("--payload", "-p", required=True, help="a JSON file with the payload, or - for stdin")
    p_recv.add_argument("--delivery", help="a delivery id to log (default: a new one)")
    p_recv.add_argument("--dry-run", action="store_true",
                        help="print which handlers would act and what they do; call neither GitHub nor DevPod")
    p_recv.set_defaults(func=cmd_receive)
    p_key = sub.add_parser("ssh-host-key", help="print the SSH gateway's host key fingerprint (docs/ssh.md)")
    p_key.set_defaults(func=cmd_ssh_host_key)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
