"""Shared CLI plumbing: the app context, database sessions, output consoles."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

import click
from rich.console import Console
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from campaigns.db.engine import create_engine, redact, session_factory
from campaigns.db.migrate import ensure_current
from campaigns.errors import DatabaseUnavailable

T = TypeVar("T")

#: Data goes to stdout; progress and messages to stderr.
out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)


@dataclass
class AppContext:
    database_url: str
    verbose: bool = False


def app_context() -> AppContext:
    ctx = click.get_current_context()
    obj = ctx.find_object(AppContext)
    if obj is None:  # a command used on its own (tests): read the environment
        import os

        from campaigns.db.engine import DEFAULT_DATABASE_URL

        obj = AppContext(os.environ.get("DIALER_DATABASE_URL", DEFAULT_DATABASE_URL))
    return obj


def run(coro: Awaitable[T]) -> T:
    return asyncio.run(_wrap(coro))


async def _wrap(coro: Awaitable[T]) -> T:
    return await coro


@asynccontextmanager
async def database(url: str, *, check_schema: bool = True) -> AsyncIterator[AsyncEngine]:
    """An engine for `url`, its schema checked, connection failures translated, always disposed."""
    engine = create_engine(url)
    try:
        if check_schema:
            try:
                await ensure_current(engine)
            except (OperationalError, DBAPIError, OSError) as exc:
                raise DatabaseUnavailable(
                    f"cannot use the database {redact(url)}: {first_line(exc)}"
                ) from None
        yield engine
    finally:
        await engine.dispose()


@asynccontextmanager
async def transaction(url: str) -> AsyncIterator[AsyncSession]:
    """One session in one transaction: committed on success, rolled back on any error."""
    async with database(url) as engine:
        async with session_factory(engine)() as session:
            async with session.begin():
                yield session


def with_session(fn: Callable[[AsyncSession], Awaitable[T]]) -> T:
    url = app_context().database_url

    async def _go() -> T:
        async with transaction(url) as session:
            return await fn(session)

    return run(_go())


def first_line(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str, ensure_ascii=False) + "\n")


def database_url_option(fn: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "--database-url", envvar="DIALER_DATABASE_URL", show_envvar=True,
        help="Database URL: sqlite:///path.db or postgresql://user:pass@host:5432/db "
             "[default: sqlite:///./dialer.db]",
    )(fn)
