"""A new SQLite store is created from `_schema.py` and stamped at head, not migrated step
by step: both ways must give the same schema, or a fresh store would differ from an
upgraded one."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, inspect

from loopline.store._migrate import HEAD, MIGRATIONS, current_revision, upgrade


def _schema(engine: Any) -> dict[str, Any]:
    found = inspect(engine)
    tables = {}
    for name in sorted(found.get_table_names()):
        tables[name] = {
            "columns": [
                (c["name"], str(c["type"]), c["nullable"], c.get("default"))
                for c in found.get_columns(name)
            ],
            "primary_key": found.get_pk_constraint(name)["constrained_columns"],
            "indexes": sorted(
                (i["name"], tuple(i["column_names"]), bool(i["unique"]))
                for i in found.get_indexes(name)
            ),
            "unique": sorted(tuple(u["column_names"]) for u in found.get_unique_constraints(name)),
            "foreign_keys": sorted(
                (tuple(f["constrained_columns"]), f["referred_table"], tuple(f["referred_columns"]))
                for f in found.get_foreign_keys(name)
            ),
        }
    return tables


def test_a_new_store_has_the_schema_that_every_migration_builds(tmp_path: Path) -> None:
    from alembic import command
    from alembic.config import Config

    migrated = create_engine(f"sqlite:///{tmp_path / 'migrated.db'}")
    with migrated.begin() as conn:
        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS))
        config.attributes["connection"] = conn
        command.upgrade(config, "head")
    created = create_engine(f"sqlite:///{tmp_path / 'created.db'}")
    assert upgrade(created) is True
    assert current_revision(created) == current_revision(migrated) == HEAD
    schema = _schema(created)
    assert len(schema) >= 25 and "monitor_alerts" in schema
    assert schema == _schema(migrated)
    assert upgrade(created) is False  # at head: nothing to do
