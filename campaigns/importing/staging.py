"""SQLite: an import that does not hold the writer lock while it reads the file.

SQLite has one writer at a time, and a writer transaction that lasts as long as a big file
would keep `dialer run` (webhook acknowledgements, claims) and every other writer waiting. So,
on SQLite, the CLI runs an import in two steps on one connection:

1. A deferred (`BEGIN`) transaction: the file is read, checked against the campaign's contacts
   and the DNC list (one consistent snapshot; WAL lets writers go on meanwhile), and the accepted
   rows go to a TEMP table, which lives in the connection's own temporary database: writing it
   takes no lock on the main database.
2. A short `BEGIN IMMEDIATE` transaction: the campaign is checked again, the staged numbers are
   checked against what other writers committed meanwhile (contacts of the campaign, DNC
   numbers: any hit fails the import, to be run again), the `contact_imports` row is written and
   the staged rows are copied into `contacts` in file order (`INSERT ... SELECT`).

Users see the import whole or not at all: a failure, Ctrl-C or kill -9 in step 1 leaves only the
TEMP table, which dies with the connection. PostgreSQL does not need this (its writers do not
block readers, and imports take only row locks and an advisory lock), so it keeps one
transaction.
"""

from __future__ import annotations

from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession

from campaigns.db.engine import SQLITE_BEGIN
from campaigns.db.models import Campaign, CampaignStatus
from campaigns.db.storage import CONTACT_COLUMNS
from campaigns.errors import ImportFailed

#: Where step 1 puts accepted rows (columns: `storage.CONTACT_COLUMNS`).
STAGING_TABLE = "temp.import_staging"


async def create(session: AsyncSession) -> None:
    """The empty staging table (dropped first if an earlier import on this connection left it)."""
    await session.execute(text(f"DROP TABLE IF EXISTS {STAGING_TABLE}"))
    await session.execute(text(f"CREATE TEMP TABLE import_staging AS SELECT "
                               f"{', '.join(CONTACT_COLUMNS)} FROM contacts WHERE 0"))


async def begin_publishing(session: AsyncSession) -> None:
    """End step 1's read transaction; the next statement begins step 2 with BEGIN IMMEDIATE."""
    conn = await session.connection()
    conn.info[SQLITE_BEGIN] = "BEGIN IMMEDIATE"
    await session.commit()


def closed_campaign(name: str, status: str | None) -> None:
    """ImportFailed when a campaign in `status` takes no more contacts (None: it is gone)."""
    if status is None:
        raise ImportFailed(f"campaign {name!r} was deleted during the import")
    if status in (CampaignStatus.COMPLETED, CampaignStatus.CANCELLED):
        raise ImportFailed(f"campaign {name!r} is {status}: contacts can only be "
                           "added to a draft, running or paused campaign (create a new one)")


async def check_still_open(session: AsyncSession, campaign_id: int, name: str) -> None:
    """Step 2: the campaign may have been completed or cancelled while the file was read (a
    column query: the session's cached Campaign object would show the old status)."""
    status = await session.scalar(select(Campaign.status).where(Campaign.id == campaign_id))
    closed_campaign(name, status)


async def conflicts(session: AsyncSession, campaign_id: int) -> int:
    """Staged numbers that another writer added meanwhile (campaign contacts or DNC)."""
    found = await session.scalar(text(
        f"SELECT count(*) FROM {STAGING_TABLE} s WHERE EXISTS (SELECT 1 FROM contacts c "
        "WHERE c.campaign_id = :cid AND c.phone_e164 = s.phone_e164) OR EXISTS "
        "(SELECT 1 FROM dnc_numbers d WHERE d.phone_e164 = s.phone_e164)"), {"cid": campaign_id})
    return int(found or 0)


async def publish(session: AsyncSession, campaign_id: int, import_id: int) -> None:
    """Copy the staged rows into `contacts` (file order), as import `import_id`; inside step 2."""
    hits = await conflicts(session, campaign_id)
    if hits:
        raise ImportFailed(f"{hits:,} of the file's numbers were added to the campaign or to the "
                           "DNC list by someone else while the file was being read; nothing was "
                           "imported: run the import again")
    columns = ", ".join(CONTACT_COLUMNS)
    values = ", ".join(":import_id" if c == "import_id" else c for c in CONTACT_COLUMNS)
    await session.execute(text(f"INSERT INTO contacts ({columns}) SELECT {values} FROM "
                               f"{STAGING_TABLE} ORDER BY rowid"), {"import_id": import_id})
    await session.execute(text(f"DROP TABLE {STAGING_TABLE}"))
