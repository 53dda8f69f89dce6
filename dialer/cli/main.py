"""`dialer`: the command line, and the one top-level error handler.

A user error prints one line on stderr and exits non-zero; a traceback only with --verbose.
"""

from __future__ import annotations

import logging
import sys
from importlib import import_module

import click

from campaigns.db.engine import DEFAULT_DATABASE_URL
from campaigns.errors import CampaignsError
from dialer.cli.common import AppContext
from dialer.errors import DialerError

# Sub-commands, each in its own module: (module, attribute).
COMMANDS = [
    ("dialer.cli.db_cmd", "db"),
    ("dialer.cli.campaign_cmd", "campaign"),
    ("dialer.cli.contacts_cmd", "contacts"),
    ("dialer.cli.dnc_cmd", "dnc"),
    ("dialer.cli.run_cmd", "run"),
    ("dialer.cli.status_cmd", "status"),
    ("dialer.cli.report_cmd", "report"),
    ("dialer.cli.simulator_cmd", "simulator"),
    ("dialer.cli.demo_cmd", "demo"),
]


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option("--database-url", envvar="DIALER_DATABASE_URL", show_envvar=True,
              default=DEFAULT_DATABASE_URL, show_default=True,
              help="sqlite:///path.db or postgresql://user:pass@host:5432/db")
@click.option("-v", "--verbose", is_flag=True, help="Log more, and show tracebacks on errors.")
@click.version_option(package_name="campaign-dialer")
@click.pass_context
def cli(ctx: click.Context, database_url: str, verbose: bool) -> None:
    """Bulk outbound campaign dialer on the Telnyx Call Control API.

    \b
    Environment: TELNYX_API_KEY (secret), TELNYX_PUBLIC_KEY, TELNYX_API_URL,
    DIALER_PUBLIC_URL, DIALER_DATABASE_URL, DIALER_HOST, DIALER_PORT.
    """
    ctx.obj = AppContext(database_url=database_url, verbose=verbose)
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    for name in ("dialer", "campaigns"):
        logging.getLogger(name).setLevel(logging.DEBUG if verbose else logging.INFO)


def _register() -> None:
    for module_name, attr in COMMANDS:
        try:
            module = import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name == module_name:
                continue  # a command not built yet in this checkout
            raise
        cli.add_command(getattr(module, attr))


_register()


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script; returns the exit code."""
    args = sys.argv[1:] if argv is None else argv
    verbose = "-v" in args or "--verbose" in args
    try:
        result = cli.main(args=args, prog_name="dialer", standalone_mode=False)
        return result if isinstance(result, int) else 0
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        return 130
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        return 130
    except click.UsageError as exc:
        where = exc.ctx.command_path if exc.ctx else "dialer"
        click.echo(f"error: {exc.format_message()} (see `{where} --help`)", err=True)
        return 2
    except click.ClickException as exc:
        click.echo(f"error: {exc.format_message()}", err=True)
        return exc.exit_code
    except (CampaignsError, DialerError) as exc:
        if verbose:
            raise
        click.echo(f"error: {exc}", err=True)
        return exc.exit_code
    except Exception as exc:  # a bug: say so in one line unless asked for the traceback
        if verbose:
            raise
        first = (str(exc).strip().splitlines() or [""])[0]
        click.echo(f"internal error: {type(exc).__name__}: {first} (run with --verbose for the "
                   "traceback)", err=True)
        return 70


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
