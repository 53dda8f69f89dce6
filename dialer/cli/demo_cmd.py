"""`dialer demo`: the whole product on embedded defaults, with no account and no setup."""

from __future__ import annotations

import tempfile
from pathlib import Path

import click

from campaigns.db.migrate import upgrade
from dialer.cli.common import err

SAMPLE_DIR = Path(__file__).resolve().parents[2] / "sample_data"


@click.command()
@click.option("--dir", "workdir", type=click.Path(file_okay=False, path_type=Path),
              help="Folder for the demo database and reports [default: a new temp folder].")
@click.pass_context
def demo(ctx: click.Context, workdir: Path | None) -> None:
    """Run the end-to-end flow on a fresh SQLite database with the sample data."""
    from dialer.cli.main import main

    workdir = workdir or Path(tempfile.mkdtemp(prefix="dialer-demo-"))
    workdir.mkdir(parents=True, exist_ok=True)
    url = f"sqlite:///{workdir / 'demo.db'}"
    err.print(f"[bold]demo[/bold]: database {url}")
    upgrade(url)
    steps = [
        ["campaign", "create", "demo", "--config", str(SAMPLE_DIR / "campaign.toml")],
        ["campaign", "start", "demo"],
        ["campaign", "show", "demo"],
    ]
    for step in steps:
        err.print(f"$ dialer {' '.join(step)}")
        code = main(["--database-url", url, *step])
        if code != 0:
            raise click.exceptions.Exit(code)
    err.print(f"demo finished; database kept in {workdir}")
