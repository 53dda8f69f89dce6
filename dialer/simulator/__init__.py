"""A Telnyx Call Control look-alike for dry runs and load tests (`dialer simulator`).

It validates dials like Telnyx, enforces the dials-per-second and channel limits, dedupes
`command_id`, plays call scenarios (human, machine, busy, ...) at a chosen speed, sends signed
webhooks with retries, injects faults on request and keeps a ledger of every call it placed.
"""

from dialer.simulator.config import (
    DEFAULT_MIX,
    SCENARIOS,
    FaultConfig,
    SimulatorConfig,
    load_scenarios_file,
)
from dialer.simulator.ledger import LedgerCall
from dialer.simulator.server import Simulator

__all__ = [
    "DEFAULT_MIX",
    "SCENARIOS",
    "FaultConfig",
    "LedgerCall",
    "Simulator",
    "SimulatorConfig",
    "load_scenarios_file",
]
