"""`dialer`: the command line, and the one top-level error handler.

A user error prints one line on stderr and exits non-zero; a traceback only with --verbose.
"""

from __future__ import annotations

import errno
import logging
import sys
from importlib import import_module

import click

from campaigns.db.engine import DEFAULT_DATABASE_URL
from campaigns.errors import CampaignsError
from dialer.cli.common import AppContext
from dialer.errors import DialerError

# Sub-commands, each in its own module, imported only when used (start-up stays fast: the engine,
# the importer and the reports pull in heavy libraries).
COMMANDS = {
    "db": "dialer.cli.db_cmd",
    "campaign": "dialer.cli.campaign_cmd",
    "contacts": "dialer.cli.contacts_cmd",
    "dnc": "dialer.cli.dnc_cmd",
    "run": "dialer.cli.run_cmd",
    "status": "dialer.cli.status_cmd",
    "report": "dialer.cli.report_cmd",
    "rules": "dialer.cli.rules_cmd",
    "simulator": "dialer.cli.simulator_cmd",
    "demo": "dialer.cli.demo_cmd",
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        module_name = COMMANDS.get(cmd_name)
        if module_name is None:
            return None
        command = getattr(import_module(module_name), cmd_name)
        assert isinstance(command, click.Command)
        return command


@click.group(cls=LazyGroup,
             context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
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




#: How the databases say that their disk is full (SQLite's SQLITE_FULL, PostgreSQL's 53100).
_DISK_FULL_TEXT = ("database or disk is full", "no space left on device", "could not extend file")


def disk_full(exc: BaseException) -> str | None:
    """The first line of a disk-full error found in `exc` or its causes, else None."""
    seen: set[int] = set()
    todo: list[BaseException | None] = [exc]
    while todo:
        cur = todo.pop()
        if cur is None or id(cur) in seen:
            continue
        seen.add(id(cur))
        text = (str(cur).strip().splitlines() or [""])[0]
        if (isinstance(cur, OSError) and cur.errno == errno.ENOSPC) or any(
                t in text.lower() for t in _DISK_FULL_TEXT):
            return text[:200] or "ENOSPC"
        orig = getattr(cur, "orig", None)
        todo += [cur.__cause__, cur.__context__, orig if isinstance(orig, BaseException) else None]
    return None


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
        full = disk_full(exc)
        if full is not None:
            click.echo(f"error: no space left on the disk ({full}); what was being written was "
                       "not completed: free some space and run the command again", err=True)
            return 1
        first = (str(exc).strip().splitlines() or [""])[0]
        click.echo(f"internal error: {type(exc).__name__}: {first} (run with --verbose for the "
                   "traceback)", err=True)
        return 70


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
