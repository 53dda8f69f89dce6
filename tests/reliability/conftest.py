"""Fixtures of the reliability tier."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from dialer.telnyx.signatures import generate_keypair
from tests.reliability.harness import ReceiverRig

#: One key pair for the receivers of this tier (tests sign with `RECEIVER_PRIVATE`).
RECEIVER_PRIVATE, RECEIVER_PUBLIC = generate_keypair()


@pytest.fixture
def receiver(sqlite_url: str) -> Iterator[ReceiverRig]:
    """The real receiver and event store on a SQLite file, verifying with `RECEIVER_PUBLIC`."""
    rig = ReceiverRig(sqlite_url, RECEIVER_PUBLIC)
    try:
        yield rig
    finally:
        rig.close()
