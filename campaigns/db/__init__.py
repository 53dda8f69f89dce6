"""Persistence: SQLAlchemy models, the engine/session factory, and the dialect-specific storage
helpers. SQLite (aiosqlite) is the embedded default; PostgreSQL (asyncpg) the production
database."""
