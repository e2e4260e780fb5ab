"""Fixed tables of the legacy layouts: created with their exact DDL when absent, checked
when present, and never altered.

Years of scripts read these tables, so a table that exists but does not fit (a column
missing, of another type, too short, or a NOT NULL column we would not fill) is
refused with one line naming the table and the column; the data waits in the spool
until someone fixes the table or the config.
"""

from __future__ import annotations

from dataclasses import dataclass

from plugins.outputs.sql.database import Column, Database, Index, Kind, Unavailable, varchar_length


class TableMismatch(Unavailable):
    """An existing table does not fit the layout."""


@dataclass(frozen=True)
class ColumnSpec:
    name: str
    ddl: str
    """Type and constraints as created: "DATETIME NOT NULL"."""
    kinds: frozenset[Kind]
    """What an existing column may hold instead, e.g. any number for a raw integer."""
    expected: str
    """The kinds in words, for the error message."""
    min_length: int = 0
    """An existing CHAR/VARCHAR column must hold at least this many characters."""


@dataclass(frozen=True)
class TableSpec:
    name: str
    columns: tuple[ColumnSpec, ...]
    primary_key: tuple[str, ...]
    key_required: bool
    """An existing table must have a unique key on exactly ``primary_key`` (the upsert
    relies on it); otherwise the key is only created with the table."""

    def create_statement(self, db: Database) -> str:
        lines = [f"{db.quote(column.name)} {column.ddl}" for column in self.columns]
        lines.append(f"PRIMARY KEY ({', '.join(db.quote(name) for name in self.primary_key)})")
        return f"CREATE TABLE {db.quote(self.name)} (" + ", ".join(lines) + ")"


def has_unique_key(indexes: list[Index], columns: tuple[str, ...]) -> bool:
    wanted = tuple(column.lower() for column in columns)
    return any(index.unique and index.columns == wanted for index in indexes)


def ensure(db: Database, spec: TableSpec, dry_run: bool = False) -> list[str]:
    """Create the table when absent (the statement is returned), else check that it
    fits; raises TableMismatch naming the first column that does not."""
    existing = db.columns(spec.name)
    if not existing:
        statement = spec.create_statement(db)
        if not dry_run:
            db.execute(statement)
        return [statement]
    check(db, spec, existing, db.indexes(spec.name))
    return []


def check(db: Database, spec: TableSpec, existing: list[Column], indexes: list[Index]) -> None:
    where = f"table {spec.name} ({db.label})"
    by_name = {column.name.lower(): column for column in existing}
    for wanted in spec.columns:
        have = by_name.pop(wanted.name.lower(), None)
        if have is None:
            raise TableMismatch(f"{where}: column {wanted.name} is missing; the table is "
                                "left as it is")
        if have.kind not in wanted.kinds:
            raise TableMismatch(f"{where}: column {have.name} is {have.type}, expected "
                                f"{wanted.expected}; the table is left as it is")
        length = varchar_length(have.type)
        if length is not None and length < wanted.min_length:
            raise TableMismatch(f"{where}: column {have.name} is {have.type}, too short for "
                                f"{wanted.min_length} characters; the table is left as it is")
    for extra in by_name.values():
        if not extra.has_default:
            raise TableMismatch(f"{where}: column {extra.name} is NOT NULL without a default, "
                                "and this layout does not fill it; the table is left as it is")
    if spec.key_required and not has_unique_key(indexes, spec.primary_key):
        raise TableMismatch(f"{where}: column {', '.join(spec.primary_key)} is not a primary "
                            "or unique key, so a row written twice would be stored twice; "
                            "the table is left as it is")
