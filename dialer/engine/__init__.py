"""The dialing engine: claims, pacing, dials, webhook ingestion, call flow, settling,
reconciliation.

Every state that matters lives in the database; the in-memory parts (queues, timers) can be lost at
any moment and are rebuilt from it on restart.
"""
