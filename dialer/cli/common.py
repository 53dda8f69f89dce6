"""Shared CLI plumbing: the app context, database sessions, output consoles."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import signal
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

import click
from rich.console import Console
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from campaigns.db.engine import create_engine, create_reader_engine, redact, session_factory
from campaigns.db.migrate import ensure_current
from campaigns.errors import DatabaseUnavailable
from campaigns.names import json_safe

T = TypeVar("T")

#: Data goes to stdout; progress and messages to stderr.
# Not a terminal (`dialer dnc list > file`): no 80-column default cutting tables' cells short.
out = Console(soft_wrap=True, width=None if sys.stdout.isatty() else 4096)
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


class _Interrupted:
    """What `_wrap` returns when Ctrl-C cancelled the command."""


def run(coro: Awaitable[T]) -> T:
    """Run a command's coroutine. Ctrl-C (SIGINT) cancels it, so that its `finally` and `with`
    blocks clean up (a report's temp file is removed, a transaction rolled back), then raises
    KeyboardInterrupt, which `main` turns into one line and exit code 130."""
    result = asyncio.run(_wrap(coro))
    if isinstance(result, _Interrupted):
        raise KeyboardInterrupt
    return result


async def _wrap(coro: Awaitable[T]) -> T | _Interrupted:
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    interrupted = False

    def on_sigint() -> None:
        nonlocal interrupted
        if not interrupted:
            interrupted = True
            # Connections closed under a cancelled query make the pool log a traceback while
            # it cleans up: noise after a Ctrl-C (shown with --verbose).
            if not logging.getLogger("dialer").isEnabledFor(logging.DEBUG):
                logging.getLogger("sqlalchemy.pool").setLevel(logging.CRITICAL)
        if task is not None:
            task.cancel()

    installed = False
    with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
        loop.add_signal_handler(signal.SIGINT, on_sigint)
        installed = True
    try:
        return await coro
    except asyncio.CancelledError:
        if interrupted:
            return _Interrupted()
        raise
    finally:
        if installed:
            loop.remove_signal_handler(signal.SIGINT)


@asynccontextmanager
async def database(url: str, *, check_schema: bool = True,
                   read_only: bool = False) -> AsyncIterator[AsyncEngine]:
    """An engine for `url`, its schema checked, connection failures translated, always disposed.
    `read_only`: transactions that never take the SQLite writer lock (`create_reader_engine`)."""
    engine = create_reader_engine(url) if read_only else create_engine(url)
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
async def transaction(url: str, *, read_only: bool = False) -> AsyncIterator[AsyncSession]:
    """One session in one transaction: committed on success, rolled back on any error.
    `read_only`: a snapshot that does not wait for writers (status, lists)."""
    async with database(url, read_only=read_only) as engine, \
            session_factory(engine)() as session, session.begin():
        yield session


def with_session(fn: Callable[[AsyncSession], Awaitable[T]], *, read_only: bool = False) -> T:
    """Run `fn` in one transaction of the command's database (`read_only`: see `transaction`)."""
    url = app_context().database_url

    async def _go() -> T:
        async with transaction(url, read_only=read_only) as session:
            return await fn(session)

    return run(_go())


def first_line(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def print_json(data: Any) -> None:
    # Control and format characters (from names stored by older versions, say) as \\u escapes.
    sys.stdout.write(json_safe(json.dumps(data, indent=2, default=str, ensure_ascii=False))
                     + "\n")

