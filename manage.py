#!/usr/bin/env python
"""The service's command line (click, through Flask's ``FlaskGroup``).

    python manage.py serve            # the hybrid server (Tornado + Flask)
    python manage.py routes [--json]  # every route of both sides
    python manage.py routes --stats   # the running server's cut-over figures
    python manage.py worker           # background workers (e.g. a queue's consumers)
    python manage.py db upgrade       # Alembic, via Flask-Migrate (every branch)
    python manage.py shell            # a Python shell with the app and models

``FlaskGroup`` brings Flask's ``shell`` and the extensions' commands (``db``);
``serve`` replaces Flask's ``run`` (the Werkzeug development server would run
Flask without the native routes), and ``routes`` lists both sides.
"""

from __future__ import annotations

import signal

if __name__ == "__main__":
    # Before anything else (click, Flask, the app take most of a second to import): a
    # SIGHUP (`systemctl reload`) during serve's start-up must wait, pending, for the
    # server's reload handler (server.serve unblocks it; with --processes the supervisor
    # does), not kill the process with SIGHUP's default action. Every other command
    # unblocks it again at once (_keep_sighup_for_serve_only).
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGHUP})

import contextlib
import json
import logging
import os
import sys

import click
from flask import Flask
from flask.cli import FlaskGroup

from config import ConfigError, Settings, load_settings


def _load(**overrides: object) -> Settings:
    try:
        return load_settings(**overrides)
    except ConfigError as error:
        raise click.ClickException(f"invalid configuration: {error}") from None


def create_cli_app() -> Flask:
    """The Flask app for commands that need one (``db``, ``shell``), with every feature.

    Built by the composition root, so templates' ``native_url()`` works in the
    shell too; its thread pool starts no thread until work is submitted.
    """
    from server.build import build_hybrid

    try:
        return build_hybrid(_load()).flask_app
    except ConfigError as error:
        raise click.ClickException(f"invalid configuration: {error}") from None


def _default_to_every_branch() -> None:
    """Make Flask-Migrate's ``db`` commands fit a history with one branch per feature.

    ``db upgrade`` applies every branch (``heads``, not ``head``), and a new
    revision (``db migrate`` / ``db revision``) goes on the skeleton's branch
    (``--head app@head``) unless a feature's branch is given (``--head orders@head``).
    See docs/features.md.
    """
    from flask_migrate.cli import db as db_group

    defaults = {("upgrade", "revision"): "heads", ("migrate", "head"): "app@head"}
    defaults[("revision", "head")] = "app@head"
    for (command, param_name), value in defaults.items():
        for param in db_group.commands[command].params:
            if param.name == param_name:
                param.default = value


@click.pass_context
def _keep_sighup_for_serve_only(ctx: click.Context) -> None:
    """The group's callback: give every command but ``serve`` SIGHUP's default action back.

    The top of this file blocks SIGHUP so that one sent while ``serve`` starts waits
    for its reload handler; ``db``, ``worker``, ``routes``, ``shell``... have no such
    handler, and a SIGHUP (a closed terminal, ``kill -HUP``) ends them as usual (one
    that came meanwhile is delivered now).
    """
    if ctx.invoked_subcommand != "serve":
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGHUP})


cli = FlaskGroup(
    callback=_keep_sighup_for_serve_only,
    create_app=create_cli_app,
    add_version_option=False,
    load_dotenv=False,  # config/ reads .env itself, with the same precedence everywhere
    help=__doc__.split("\n\n")[0] if __doc__ else None,
)
cli.commands.pop("run", None)
_default_to_every_branch()


@cli.command("serve", with_appcontext=False)  # it builds its own app, after the checks
@click.option("--host", help="Interface to listen on (HOST).")
@click.option("--port", type=int, help="TCP port (PORT); 0 picks a free one.")
@click.option("--threads", type=int, help="Worker threads of the shared executor (THREADS).")
@click.option(
    "--reload/--no-reload",
    default=None,
    help="Restart when code changes (AUTORELOAD; default on in development).",
)
@click.option(
    "--processes",
    type=int,
    help="Server processes sharing the port (PROCESSES; default 1; 0: one per CPU core).",
)
@click.option(
    "--loop",
    "event_loop",
    type=click.Choice(["asyncio", "uvloop"]),
    help="Event loop (EVENT_LOOP; default asyncio; uvloop needs the uvloop extra).",
)
def serve_command(
    host: str | None,
    port: int | None,
    threads: int | None,
    reload: bool | None,
    processes: int | None,
    event_loop: str | None,
) -> None:
    """Serve native routes and the Flask app on one port.

    In development the SQLite database is created and migrated first, so a
    fresh clone just works; elsewhere run ``db upgrade`` as a deploy step (the
    server refuses to start on a database that is not at the head revision).
    A start-up failure (configuration, database, address) is one ``Error:``
    line and exit status 1; a shutdown on SIGTERM/SIGINT exits 0.
    With ``--processes`` other than 1, a supervisor forks the server processes
    after the checks and replaces any that dies (``server/processes.py``).
    """
    from server.cutover import warn_if_frozen
    from server.metrics import MULTIPROC_DIR_ENV, multiprocess_metrics
    from server.serve import configure_logging

    # Blocked already when run as a script (the top of this file); here too for a
    # caller that imports this module: a SIGHUP (systemctl reload) during start-up
    # waits, pending, until the server handles it (server.serve unblocks it; with
    # --processes the supervisor does), instead of killing the process.
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGHUP})
    overrides = {
        "host": host,
        "port": port,
        "threads": threads,
        "autoreload": reload,
        "processes": processes,
        "event_loop": event_loop,
    }
    settings = _load(**{k: v for k, v in overrides.items() if v is not None})
    configure_logging(settings.log_level, settings.log_format or "text")
    warn_if_frozen("start")
    cleanup = contextlib.ExitStack()
    if settings.processes != 1:
        try:  # before any metric exists, so that every child writes to the shared files
            cleanup.enter_context(multiprocess_metrics())
        except OSError as error:
            raise click.ClickException(f"cannot prepare {MULTIPROC_DIR_ENV}: {error}") from None
    with cleanup:  # a metrics directory made for this run is removed at the end
        _serve(settings)


def _serve(settings: Settings) -> None:
    """``serve``'s body, once logging and the metrics directory are set up."""
    from sqlalchemy.exc import DBAPIError

    from app.schema_migrations import upgrade_database
    from server.build import build_hybrid
    from server.checks import (
        StartupError,
        bind,
        check_known_revisions,
        database_error_message,
    )
    from server.metrics import child_exited
    from server.processes import serve_in_processes
    from server.serve import run_event_loop, serve

    try:
        hybrid = build_hybrid(settings)
    except ConfigError as error:
        raise click.ClickException(f"invalid configuration: {error}") from None
    try:
        if settings.app_env == "development":
            # The address first: a busy port is the one Error line, before any
            # migration runs (and logs); serving binds again (SO_REUSEADDR).
            for sock in bind(settings.host, settings.port):
                sock.close()
            if check_known_revisions(hybrid.flask_app)[1]:
                upgrade_database(hybrid.flask_app)
        if settings.processes != 1:
            status = serve_in_processes(
                settings, hybrid.flask_app, hybrid.cutover, on_child_exit=child_exited
            )
            hybrid.close()
            sys.exit(status)
        busy = run_event_loop(serve(settings, hybrid), settings.event_loop)
    except StartupError as error:
        hybrid.close()
        raise click.ClickException(str(error)) from None
    except DBAPIError as error:
        hybrid.close()
        raise click.ClickException(database_error_message(error)) from None
    if busy:
        # Python joins every ThreadPoolExecutor thread at interpreter exit, so a
        # thread stuck in background work that never stops (or in a blocked view)
        # would keep the process alive after "stopped". The shutdown has already
        # let features record what was cut short and logged how many threads are stuck:
        # flush and leave without joining them.
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)


@cli.command("worker", with_appcontext=False)
@click.option(
    "--processes",
    type=int,
    default=1,
    show_default=True,
    help="Worker processes (0: one per CPU core).",
)
@click.option("--threads", type=int, help="Threads per process that run jobs (default THREADS).")
@click.option(
    "--queues",
    help="Comma-separated queues to consume (default: every queue the features use).",
)
def worker_command(processes: int, threads: int | None, queues: str | None) -> None:
    """Run the features' background workers (e.g. the queue consumers) until SIGTERM.

    Like ``serve``: a start-up failure (configuration, database, broker) is one
    ``Error:`` line and exit status 1; SIGTERM/SIGINT lets jobs under way end
    or hands them back to the queue within SHUTDOWN_TIMEOUT, and exits 0.
    """
    from app.feature import WorkerOptions
    from server.checks import StartupError
    from server.serve import configure_logging
    from server.worker import run_workers

    settings = _load()
    configure_logging(settings.log_level, settings.log_format or "text")
    names = tuple(name.strip() for name in (queues or "").split(",") if name.strip())
    options = WorkerOptions(
        threads=threads if threads is not None else settings.threads, queues=names
    )
    try:
        status = run_workers(settings, options, processes)
    except (StartupError, ConfigError) as error:
        raise click.ClickException(str(error)) from None
    sys.exit(status)


@cli.command("routes", with_appcontext=False)  # it builds its own app (none for --stats)
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
@click.option(
    "--stats",
    is_flag=True,
    help="Read the running server's /metrics: each ported route's state, the requests "
    "each side served, the shadow comparisons.",
)
@click.option(
    "--url",
    metavar="URL",
    help="With --stats: the metrics URL (default http://HOST:PORT/metrics, or "
    "METRICS_HOST:METRICS_PORT when METRICS_PORT is set).",
)
def routes_command(as_json: bool, stats: bool, url: str | None) -> None:
    """List every route of both sides, in match order: native first, then Flask.

    A Flask route that a native rule hides is flagged ``shadowed`` (it has
    been ported), with the ported route's cut-over state from the settings
    (FLASK_ROUTES, CANARY_ROUTES, SHADOW_ROUTES); a native route with no Flask
    twin is ``native-only``. With ``--stats``, the running server's figures
    per ported route instead (sends METRICS_TOKEN when set).
    """
    if url is not None and not stats:
        raise click.UsageError("--url goes with --stats")
    settings = _load()
    if stats:
        _print_stats(settings, url, as_json)
        return

    from server.build import build_hybrid
    from server.inventory import build_inventory, format_table

    try:
        hybrid = build_hybrid(settings)
    except ConfigError as error:
        raise click.ClickException(f"invalid configuration: {error}") from None
    try:
        routes = build_inventory(
            hybrid.application.wildcard_router.rules,
            hybrid.flask_app,
            settings.flask_mount,
            hybrid.cutover.plan,
        )
    finally:
        hybrid.close()
    if as_json:
        click.echo(json.dumps([route.as_dict() for route in routes], indent=2))
    else:
        click.echo(format_table(routes))


def _print_stats(settings: Settings, url: str | None, as_json: bool) -> None:
    """``routes --stats``: scrape, sum per route, print (``server/cutover/stats.py``)."""
    from server.cutover.stats import (
        StatsError,
        format_stats,
        metrics_url,
        scrape,
        stats_json,
        summarize,
    )

    token = settings.metrics_token.get_secret_value() if settings.metrics_token else None
    try:
        rows = summarize(scrape(url or metrics_url(settings), token))
    except StatsError as error:
        raise click.ClickException(str(error)) from None
    click.echo(stats_json(rows) if as_json else format_stats(rows))


cli.add_command(routes_command)


if __name__ == "__main__":
    sys.exit(cli.main())
