"""Alembic environment for the coordinator database (run through msigvault.coordinator.db)."""

from alembic import context

connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - only msigvault.coordinator.db runs these migrations
    raise RuntimeError("run the coordinator migrations through msigvault.coordinator.db.upgrade()")

if connection.dialect.name == "postgresql":
    # two coordinators migrating one database at once: the second waits, then finds it done
    connection.exec_driver_sql("SELECT pg_advisory_xact_lock(1836279670)")

context.configure(connection=connection, target_metadata=None, render_as_batch=True)
context.run_migrations()
