"""Small helpers shared by the benchmark scripts."""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_port(port: int, timeout: float = 20.0) -> None:
    """Until something listens on 127.0.0.1:`port` (a server process starting up)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.1)


def cpu_secs(pid: int) -> float:
    """User + system CPU seconds a process has used so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def tree_cpu_secs(pid: int) -> float:
    """CPU seconds used so far by a process and its children alive now (children that exited
    are not counted)."""
    total = cpu_secs(pid)
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            if int(stat[1]) == pid:
                total += cpu_secs(int(entry.name))
        except (FileNotFoundError, ProcessLookupError):
            continue
    return total


def postgres_cpu_secs(data_dir: Path) -> float:
    """CPU seconds used so far by the PostgreSQL server of `data_dir`: its postmaster and the
    backends alive now."""
    return tree_cpu_secs(int((data_dir / "postmaster.pid").read_text().split()[0]))
