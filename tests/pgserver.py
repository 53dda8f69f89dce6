"""A throwaway PostgreSQL 15 server for the tests (never as root: as the `postgres` user when the
tests run as root), listening on 127.0.0.1 and a free port, data directory in a temp folder."""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

PG_BIN = Path(os.environ.get("DIALER_TEST_PG_BIN", "/usr/lib/postgresql/15/bin"))


class PostgresUnavailable(RuntimeError):
    pass


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class PgServer:
    base_dir: Path
    port: int
    user: str | None  # OS user the server runs as (None: the current user)

    @property
    def data_dir(self) -> Path:
        return self.base_dir / "data"

    def url(self, dbname: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{dbname}"

    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        cmd = list(args)
        if self.user is not None:
            cmd = ["runuser", "-u", self.user, "--", *cmd]
        return subprocess.run(cmd, check=check, capture_output=True, text=True, timeout=120)

    def start(self) -> None:
        opts = (f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.base_dir} "
                "-c fsync=off -c synchronous_commit=off -c full_page_writes=off "
                "-c max_connections=300 -c shared_buffers=128MB")
        self._run(str(PG_BIN / "pg_ctl"), "-D", str(self.data_dir), "-o", opts, "-w", "-t", "60",
                  "-l", str(self.base_dir / "server.log"), "start")

    def stop(self, mode: str = "fast") -> None:
        self._run(str(PG_BIN / "pg_ctl"), "-D", str(self.data_dir), "-m", mode, "-w", "stop",
                  check=False)

    def restart(self) -> None:
        self.stop()
        self.start()

    def cleanup(self) -> None:
        self.stop("immediate")
        shutil.rmtree(self.base_dir, ignore_errors=True)


def start_server() -> PgServer:
    initdb = PG_BIN / "initdb"
    if not initdb.exists():
        raise PostgresUnavailable(f"no PostgreSQL binaries at {PG_BIN}")
    user: str | None = None
    if os.geteuid() == 0:
        try:
            pw = pwd.getpwnam("postgres")
        except KeyError:
            raise PostgresUnavailable("running as root and there is no `postgres` user") from None
        user = "postgres"
    base = Path(tempfile.mkdtemp(prefix="dialer-pg-"))
    if user is not None:
        os.chown(base, pw.pw_uid, pw.pw_gid)
    server = PgServer(base, _free_port(), user)
    try:
        server._run(str(initdb), "-D", str(server.data_dir), "-U", "postgres", "--auth=trust",
                    "-E", "UTF8", "--locale=C.UTF-8", "--no-sync")
        server.start()
    except subprocess.CalledProcessError as exc:
        shutil.rmtree(base, ignore_errors=True)
        raise PostgresUnavailable(f"cannot start PostgreSQL: {exc.stderr or exc.stdout}") from exc
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", server.port), timeout=1):
                return server
        except OSError:
            time.sleep(0.1)
    server.cleanup()
    raise PostgresUnavailable("PostgreSQL did not start listening")
