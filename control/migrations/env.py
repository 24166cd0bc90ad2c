"""Alembic environment: the engine is handed in by control.db.migrate, never read from a file.

On SQLite, batch operations rebuild a table (create a copy, drop the old one, rename). With
foreign keys enforced, dropping a table that other rows point at fails (or, worse, deletes
nothing but breaks the links), so migrations run as SQLite's documented rebuild procedure says:
foreign keys off for the connection (it must be set outside a transaction), the migrations in
one transaction, ``PRAGMA foreign_key_check`` before the commit, and foreign keys on again.
"""

from __future__ import annotations

from alembic import context
from sqlmodel import SQLModel

import control.db.tables  # noqa: F401  (registers the tables on SQLModel.metadata)

config = context.config
engine = config.attributes["engine"]
sqlite = engine.dialect.name == "sqlite"

with engine.connect() as connection:
    if sqlite:
        connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
        connection.commit()  # SQLAlchemy's autobegin is only logical here: no BEGIN was sent
    try:
        with connection.begin():
            context.configure(
                connection=connection,
                target_metadata=SQLModel.metadata,
                render_as_batch=sqlite,
                compare_type=True,
            )
            with context.begin_transaction():
                context.run_migrations()
            if sqlite:
                broken = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
                if broken:
                    raise RuntimeError(f"a migration left rows pointing at nothing: {broken[:5]}")
    finally:
        if sqlite:
            connection.exec_driver_sql("PRAGMA foreign_keys=ON")
            connection.commit()
