"""Alembic environment: loopline always hands in an open connection (see _migrate.py)."""

from alembic import context

from loopline.store._schema import metadata

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
