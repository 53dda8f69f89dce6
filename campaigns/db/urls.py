"""Checks on a database URL before anything connects with it. Pure.

A malformed URL must give one clear line, never an internal error, and never any part of the
password: SQLAlchemy's parser fails with the text after an unencoded `@` (`'Tail42@host:5432'`)
and the drivers fail late, with exceptions the CLI does not expect (OverflowError for port 99999,
TypeError for an unknown query parameter). So the text of a URL that cannot be parsed is never
shown, and what parses is checked here (port, host, query) and shown only redacted.
"""

from __future__ import annotations

from sqlalchemy.engine import URL, make_url

from campaigns.errors import InvalidSettings

__all__ = ["SSL_MODES", "parse_url", "redact"]

_EXAMPLES = "write sqlite:///path/to/file.db or postgresql://user:password@host:5432/dbname"
#: libpq's sslmode values, which asyncpg takes as `ssl`.
SSL_MODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")


def redact(url: str | URL) -> str:
    """The URL with its password hidden: safe for logs and error messages."""
    try:
        parsed = make_url(url) if isinstance(url, str) else url
        return parsed.render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - whatever the parser says may quote the password
        return "<unparseable database URL>"


def parse_url(url: str | URL) -> URL:
    """The parsed URL, `sslmode` given to the driver as `ssl`; InvalidSettings (one line, the
    password never in it) when it is malformed."""
    if isinstance(url, URL):
        parsed = url
    else:
        try:
            parsed = make_url(url)
        except Exception:  # noqa: BLE001 - ArgumentError, ValueError (a port that is no number)
            raise InvalidSettings(
                "cannot parse the database URL (not shown: it may hold a password): "
                f"{_EXAMPLES}; in the user name and password, write @ as %40, : as %3A, "
                "/ as %2F and % as %25") from None
    backend = parsed.drivername.partition("+")[0]
    shown = redact(parsed)
    if parsed.port is not None and not 1 <= parsed.port <= 65535:
        raise InvalidSettings(f"the database URL {shown} has port {parsed.port}: "
                              "a port is 1 to 65535")
    if backend == "sqlite":
        if parsed.host or parsed.username or parsed.password or parsed.port:
            raise InvalidSettings(f"the database URL {shown} names a host: SQLite URLs are "
                                  "sqlite:///relative/path.db or sqlite:////absolute/path.db")
        if parsed.query:
            raise InvalidSettings(f"the database URL {shown} has query parameters "
                                  f"({', '.join(sorted(parsed.query))}): SQLite URLs take none")
        return parsed
    if backend in ("postgresql", "postgres"):
        return _check_pg_query(parsed, shown)
    return parsed  # the caller refuses other databases


def _check_pg_query(parsed: URL, shown: str) -> URL:
    query = dict(parsed.query)
    for key, value in query.items():
        if not isinstance(value, str):
            raise InvalidSettings(f"the database URL {shown} repeats the parameter {key!r}")
    if "sslmode" in query:
        if "ssl" in query:
            raise InvalidSettings(f"the database URL {shown} has both ssl and sslmode: "
                                  "keep one")
        query["ssl"] = query.pop("sslmode")
    unknown = sorted(set(query) - {"ssl"})
    if unknown:
        raise InvalidSettings(
            f"the database URL {shown} has unsupported parameters ({', '.join(unknown)}): "
            "PostgreSQL URLs take only sslmode (or ssl)")
    if "ssl" in query and query["ssl"] not in SSL_MODES:
        raise InvalidSettings(f"the database URL {shown} has sslmode {query['ssl']!r}: "
                              f"use one of {', '.join(SSL_MODES)}")
    return parsed.set(query=query)
