"""The store's SQLite schema: tables (created through sqlite-utils) and the append-only triggers.

Every ledger table is append-only: triggers refuse UPDATE and DELETE, and insert guards make the key
column dense (``seq = max + 1``), so ``INSERT OR REPLACE`` cannot rewrite history either. Never call
sqlite-utils' ``transform()`` on these tables: it rebuilds the table and drops its triggers (the
self-check on open would then refuse the store).
"""

from __future__ import annotations

import sqlite3
from typing import Any

__all__ = ["FORMAT", "TABLES", "TRIGGERS", "create_schema", "schema_problems"]

#: Format tag recorded in the ``meta`` table.
FORMAT = "safesynth-ledger-store/v1"

#: table -> (columns, primary key)
TABLES: dict[str, tuple[dict[str, type], str | tuple[str, ...]]] = {
    "meta": ({"key": str, "value": str}, "key"),
    "keys": ({"idx": int, "vkey": str, "from_size": int, "rotation_seq": int}, "idx"),
    "entries": (
        {"seq": int, "kind": str, "actor": str, "timestamp": str, "body": bytes, "leaf_hash": bytes},
        "seq",
    ),
    "nodes": ({"level": int, "idx": int, "hash": bytes}, ("level", "idx")),
    "checkpoints": ({"size": int, "note": str}, "size"),
    "cosignatures": ({"id": int, "size": int, "line": str}, "id"),
    "witnesses": ({"idx": int, "vkey": str}, "idx"),
}

_NOT_NULL = {
    "meta": {"value"},
    "keys": {"vkey", "from_size"},
    "entries": {"kind", "actor", "timestamp", "body", "leaf_hash"},
    "nodes": {"hash"},
    "checkpoints": {"note"},
    "cosignatures": {"size", "line"},
    "witnesses": {"vkey"},
}


def _immutable(table: str) -> dict[str, str]:
    return {
        f"{table}_no_update": (
            f"CREATE TRIGGER {table}_no_update BEFORE UPDATE ON {table} "
            f"BEGIN SELECT RAISE(ABORT, 'ledger table {table} is append-only'); END"
        ),
        f"{table}_no_delete": (
            f"CREATE TRIGGER {table}_no_delete BEFORE DELETE ON {table} "
            f"BEGIN SELECT RAISE(ABORT, 'ledger table {table} is append-only'); END"
        ),
    }


def _dense(table: str, column: str, scope: str = "") -> dict[str, str]:
    where = f" WHERE {scope} = NEW.{scope}" if scope else ""
    return {
        f"{table}_insert_guard": (  # names are our constants, never input
            f"CREATE TRIGGER {table}_insert_guard BEFORE INSERT ON {table} "  # noqa: S608
            f"WHEN NEW.{column} IS NOT (SELECT COALESCE(MAX({column}), -1) + 1 FROM {table}{where}) "
            f"BEGIN SELECT RAISE(ABORT, 'ledger {table}.{column} must be max + 1'); END"
        )
    }


#: trigger name -> exact SQL, as stored in sqlite_master (the self-check compares them verbatim).
TRIGGERS: dict[str, str] = {}
for _t in TABLES:
    TRIGGERS.update(_immutable(_t))
TRIGGERS.update(_dense("keys", "idx"))
TRIGGERS.update(_dense("entries", "seq"))
TRIGGERS.update(_dense("nodes", "idx", "level"))
TRIGGERS.update(_dense("cosignatures", "id"))
TRIGGERS.update(_dense("witnesses", "idx"))
TRIGGERS["checkpoints_insert_guard"] = (
    "CREATE TRIGGER checkpoints_insert_guard BEFORE INSERT ON checkpoints "
    "WHEN NEW.size IS NOT (SELECT COALESCE(MAX(size), -1) + 1 FROM checkpoints) "
    "OR NEW.size IS NOT (SELECT COALESCE(MAX(seq), -1) + 1 FROM entries) "
    "BEGIN SELECT RAISE(ABORT, 'ledger checkpoints must follow the entries one by one'); END"
)
TRIGGERS["meta_insert_guard"] = (
    "CREATE TRIGGER meta_insert_guard BEFORE INSERT ON meta "
    "WHEN EXISTS (SELECT 1 FROM meta WHERE key = NEW.key) "
    "BEGIN SELECT RAISE(ABORT, 'ledger meta values are written once'); END"
)
TRIGGERS["cosignatures_size_guard"] = (
    "CREATE TRIGGER cosignatures_size_guard BEFORE INSERT ON cosignatures "
    "WHEN NOT EXISTS (SELECT 1 FROM checkpoints WHERE size = NEW.size) "
    "BEGIN SELECT RAISE(ABORT, 'a cosignature needs its checkpoint'); END"
)


def create_schema(db: Any) -> None:
    """Create the tables (sqlite-utils, STRICT) and the triggers on a fresh ``sqlite_utils.Database``."""
    for name, (columns, pk) in TABLES.items():
        db[name].create(columns, pk=pk, not_null=_NOT_NULL[name], strict=True)
    db["entries"].create_index(["kind", "seq"], index_name="entries_kind_seq")
    for sql in TRIGGERS.values():
        db.execute(sql)


def schema_problems(conn: sqlite3.Connection) -> list[str]:
    """Differences between the database's schema and the expected one (empty list: all good).

    Plain SQL (``PRAGMA table_info``), so that opening a store does not import sqlite-utils (which
    pulls in pandas and numpy when they are installed).
    """
    problems: list[str] = []
    found = dict(conn.execute("SELECT name, sql FROM sqlite_master WHERE type = 'trigger'").fetchall())
    for name, sql in TRIGGERS.items():
        if name not in found:
            problems.append(f"trigger {name} is missing")
        elif found[name] != sql:
            problems.append(f"trigger {name} was changed")
    problems.extend(f"unexpected trigger {name}" for name in found.keys() - TRIGGERS.keys())
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    for name, (columns, pk) in TABLES.items():
        if name not in tables:
            problems.append(f"table {name} is missing")
            continue
        info = conn.execute(f"PRAGMA table_info({name})").fetchall()  # our constant names
        expected_types = {str: "TEXT", int: "INTEGER", bytes: "BLOB"}
        if {(r[1], r[2].upper()) for r in info} != {(c, expected_types[t]) for c, t in columns.items()}:
            problems.append(f"table {name} has different columns")
        pks = [r[1] for r in sorted(info, key=lambda r: r[5]) if r[5] > 0]
        if pks != ([pk] if isinstance(pk, str) else list(pk)):
            problems.append(f"table {name} has a different primary key")
    return problems
