"""Alembic environment and versions: the only way the schema is created or changed.

Shipped as a package so that `dialer db upgrade` finds it wherever the project is installed.
"""

from pathlib import Path

LOCATION = Path(__file__).resolve().parent
