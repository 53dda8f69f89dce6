"""Helpers for the contact import tests: the CLI in-process, a campaign, files, database peeks."""

from __future__ import annotations

import asyncio
import csv
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from campaigns.db.engine import create_engine
from dialer.cli.main import main

Runner = Callable[..., tuple[int, str, str]]


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> Runner:
    """cli(url, *args) -> (exit code, stdout, stderr) of `dialer --database-url url args`."""

    def _run(url: str, *args: str) -> tuple[int, str, str]:
        capsys.readouterr()
        code = main(["--database-url", url, *args])
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return _run


def query(url: str, sql: str, **params: Any) -> list[tuple[Any, ...]]:
    async def _go() -> list[tuple[Any, ...]]:
        engine = create_engine(url)
        try:
            async with engine.connect() as conn:
                return [tuple(r) for r in (await conn.execute(text(sql), params)).all()]
        finally:
            await engine.dispose()

    return asyncio.run(_go())


def snapshot(url: str) -> dict[str, list[tuple[Any, ...]]]:
    """Everything an import could touch, to prove that a failed one changed nothing."""
    return {t: query(url, f"SELECT * FROM {t} ORDER BY 1")
            for t in ("campaigns", "contacts", "contact_imports", "dnc_numbers")}


@pytest.fixture
def campaign(db_url: str, cli: Runner) -> str:
    code, _, err = cli(db_url, "campaign", "create", "spring", "--from", "+14155550100",
                       "--connection-id", "1", "--fallback-timezone", "America/Chicago")
    assert code == 0, err
    return "spring"


def write_csv(path: Path, header: Sequence[str], rows: Sequence[Sequence[str]],
              delimiter: str = ",", encoding: str = "utf-8") -> Path:
    with path.open("w", newline="", encoding=encoding) as fh:
        w = csv.writer(fh, delimiter=delimiter)
        w.writerow(header)
        w.writerows(rows)
    return path


def import_json(cli: Runner, url: str, *args: str) -> dict[str, Any]:
    code, out, err = cli(url, "contacts", "import", *args, "--json")
    assert code == 0, err
    return dict(json.loads(out))


def read_rejects(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))
