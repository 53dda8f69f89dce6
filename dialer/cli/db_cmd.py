"""`dialer db ...`: schema migrations."""

from __future__ import annotations

import click
from sqlalchemy.exc import DBAPIError, OperationalError

from campaigns.db.engine import create_engine, redact
from campaigns.db.migrate import current_revision, head_revision, upgrade
from campaigns.errors import DatabaseUnavailable
from dialer.cli.common import app_context, err, first_line, run


@click.group()
def db() -> None:
    """Database schema."""


@db.command("upgrade")
def db_upgrade() -> None:
    """Create the schema, or apply new migrations (safe to run again)."""
    url = app_context().database_url
    try:
        upgrade(url)
    except (OperationalError, DBAPIError, OSError) as exc:
        raise DatabaseUnavailable(f"cannot upgrade {redact(url)}: {first_line(exc)}") from None
    err.print(f"database {redact(url)} is at schema revision {head_revision()}")


@db.command("current")
def db_current() -> None:
    """Print the schema revision of the database."""
    url = app_context().database_url

    async def _current() -> str | None:
        engine = create_engine(url)
        try:
            return await current_revision(engine)
        except (OperationalError, DBAPIError, OSError) as exc:
            raise DatabaseUnavailable(f"cannot read {redact(url)}: {first_line(exc)}") from None
        finally:
            await engine.dispose()

    rev = run(_current())
    click.echo(rev or "none")
