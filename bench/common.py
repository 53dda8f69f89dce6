"""Small helpers shared by the benchmark scripts."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]


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


def _raise_priority() -> None:
    """The simulator stands in for Telnyx's servers, which do not share our 2 cores: it runs at a
    higher scheduling priority (when allowed), so that the time it stamps on a dial is when the
    dial arrived, not when the kernel next gave it a core while the engine and PostgreSQL ran."""
    try:
        os.nice(-10)
    except OSError:
        pass


def start_simulator(private_key: str, *, speed: float, scenarios: Path,
                    raise_priority: bool = True) -> tuple[subprocess.Popen[bytes], str]:
    """A `dialer simulator` process with the rate and channel limits out of the way; returns it
    and its base URL once it listens."""
    port = free_port()
    sim = subprocess.Popen(
        [sys.executable, "-m", "dialer.cli.main", "simulator", "--port", str(port),
         "--private-key", private_key, "--cps-limit", "1000", "--channels", "100000",
         "--speed", str(speed), "--scenarios", str(scenarios)],
        env={**os.environ, "PYTHONPATH": str(REPO)}, stderr=subprocess.DEVNULL,
        preexec_fn=_raise_priority if raise_priority else None)
    wait_for_port(port)
    return sim, f"http://127.0.0.1:{port}"


def queued_contacts(campaign_id: int, n: int, now: datetime) -> list[dict[str, Any]]:
    """Rows of `n` contacts due now (San Francisco numbers), for a bulk insert."""
    return [{"campaign_id": campaign_id, "phone_e164": f"+1415{2000000 + i:07d}",
             "timezones": ["America/Los_Angeles"], "custom_fields": {}, "status": "queued",
             "attempts": 0, "next_attempt_at": now, "created_at": now, "updated_at": now}
            for i in range(n)]
