"""Comparing Django models with the tables dbmate built: what each side says a column is.

The admin's models are unmanaged and Django's own tables come from a dbmate migration,
so nothing but this comparison keeps a model and its table in step. It reads the
table from pg_catalog and the model from Django's own field-to-type mapping
(`field.db_type`, which is where citext and enum fields name their types), and lists
every difference: missing or extra columns, types, nullability, primary key, unique
columns, foreign key targets and their ON DELETE, and enum labels. A view (the review
queue) has no keys, constraints or NOT NULL: it is compared by its columns and types.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import psycopg
from django.db import models
from django.db.backends.base.base import BaseDatabaseWrapper

# What format_type() prints for the type names Django writes.
_TYPE_SPELLINGS = [
    (re.compile(r"^varchar\((\d+)\)$"), r"character varying(\1)"),
    (re.compile(r"^char\((\d+)\)$"), r"character(\1)"),
    (re.compile(r"^numeric\((\d+), ?(\d+)\)$"), r"numeric(\1,\2)"),
    (re.compile(r"^time$"), "time without time zone"),
    (re.compile(r"^timestamp$"), "timestamp without time zone"),
]

# pg_constraint.confdeltype for each Django on_delete: the database must do what the
# model says, or a deletion outside Django (a cascade from SQL) would differ.
_ON_DELETE = {
    models.CASCADE: {"c"},
    models.SET_NULL: {"n"},
    models.SET_DEFAULT: {"d"},
    models.PROTECT: {"a", "r"},
    models.RESTRICT: {"a", "r"},
    models.DO_NOTHING: {"a"},
}
_ON_DELETE_NAMES = {"a": "NO ACTION", "r": "RESTRICT", "c": "CASCADE", "n": "SET NULL"}


@dataclass(frozen=True)
class Column:
    type: str
    nullable: bool
    # The labels of an enum type, in order; empty for other types.
    enum_labels: tuple[str, ...] = ()


@dataclass(frozen=True)
class ForeignKey:
    table: str
    column: str
    on_delete: str


@dataclass(frozen=True)
class TableSchema:
    name: str
    columns: dict[str, Column]
    primary_key: tuple[str, ...]
    # Column sets with a unique constraint or unique index (primary key included).
    unique: frozenset[tuple[str, ...]] = field(default_factory=frozenset)
    # Single-column foreign keys by column.
    foreign_keys: dict[str, ForeignKey] = field(default_factory=dict)
    # A view has columns and types but no keys, constraints or NOT NULL.
    is_view: bool = False


def read_table(conn: psycopg.Connection, table: str) -> TableSchema | None:
    """The table as the database has it (None when there is none by that name)."""
    found = conn.execute(
        "SELECT c.oid, c.relkind = 'v' FROM pg_class c WHERE c.oid = to_regclass(quote_ident(%s))",
        (table,),
    ).fetchone()
    if found is None:
        return None
    oid, is_view = found
    columns = {
        name: Column(type_, not not_null, tuple(labels or ()))
        for name, type_, not_null, labels in conn.execute(
            """
            SELECT a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull,
                   (SELECT array_agg(e.enumlabel ORDER BY e.enumsortorder)
                    FROM pg_enum e WHERE e.enumtypid = a.atttypid)
            FROM pg_attribute a
            WHERE a.attrelid = %s AND a.attnum > 0 AND NOT a.attisdropped
            ORDER BY a.attnum
            """,
            (oid,),
        ).fetchall()
    }
    indexes = conn.execute(
        """
        SELECT i.indisprimary,
               array(SELECT a.attname
                     FROM unnest(i.indkey) WITH ORDINALITY AS k (attnum, n)
                     JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
                     ORDER BY k.n)
        FROM pg_index i
        WHERE i.indrelid = %s AND i.indisunique
          AND i.indpred IS NULL AND i.indexprs IS NULL
        """,
        (oid,),
    ).fetchall()
    foreign_keys = {
        columns_[0]: ForeignKey(target, target_columns[0], on_delete)
        for columns_, target, target_columns, on_delete in conn.execute(
            """
            SELECT array(SELECT a.attname FROM unnest(c.conkey) AS k (attnum)
                         JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.attnum),
                   t.relname,
                   array(SELECT a.attname FROM unnest(c.confkey) AS k (attnum)
                         JOIN pg_attribute a ON a.attrelid = c.confrelid AND a.attnum = k.attnum),
                   c.confdeltype::text
            FROM pg_constraint c
            JOIN pg_class t ON t.oid = c.confrelid
            WHERE c.conrelid = %s AND c.contype = 'f' AND cardinality(c.conkey) = 1
            """,
            (oid,),
        ).fetchall()
    }
    primary = next((tuple(cols) for is_primary, cols in indexes if is_primary), ())
    return TableSchema(
        name=table,
        columns=columns,
        primary_key=primary,
        unique=frozenset(tuple(cols) for _, cols in indexes),
        foreign_keys=foreign_keys,
        is_view=is_view,
    )


def expected_type(model_field: models.Field, connection: BaseDatabaseWrapper) -> str:
    """The column type Django expects for a field, spelled as format_type() spells it."""
    db_type = model_field.db_type(connection)
    if db_type is None:
        raise ValueError(f"{model_field} has no column type")
    for pattern, spelling in _TYPE_SPELLINGS:
        db_type = pattern.sub(spelling, db_type)
    return db_type


def model_drift(
    model: type[models.Model], table: TableSchema | None, connection: BaseDatabaseWrapper
) -> list[str]:
    """Every way the model and the table disagree; empty when they match."""
    opts = model._meta
    where = f"{opts.label} ({opts.db_table})"
    if table is None:
        return [f"{where}: no such table"]
    problems: list[str] = []
    fields = {f.column: f for f in opts.concrete_fields}
    for column in sorted(set(table.columns) - set(fields)):
        problems.append(f"{where}: column {column} has no field")
    for column, model_field in fields.items():
        found = table.columns.get(column)
        if found is None:
            problems.append(f"{where}: field {model_field.name} has no column {column}")
            continue
        wanted = expected_type(model_field, connection)
        if wanted != found.type:
            problems.append(f"{where}: {column} is {found.type}, the model says {wanted}")
        if table.is_view:
            continue
        if model_field.null != found.nullable:
            problems.append(
                f"{where}: {column} is {'NULL' if found.nullable else 'NOT NULL'}, "
                f"the model says {'null' if model_field.null else 'not null'}"
            )
        if found.enum_labels:
            labels = tuple(str(value) for value, _ in model_field.flatchoices)
            if labels != found.enum_labels:
                problems.append(
                    f"{where}: {column} takes {list(found.enum_labels)}, the model {list(labels)}"
                )
        if model_field.unique and (column,) not in table.unique:
            problems.append(f"{where}: {column} is unique in the model, not in the database")
        if not model_field.unique and (column,) in table.unique:
            problems.append(f"{where}: {column} is unique in the database, not in the model")
        problems.extend(_foreign_key_drift(where, model_field, table))
    if table.is_view:
        return problems
    primary = (opts.pk.column,) if opts.pk is not None else ()
    if primary != table.primary_key:
        problems.append(f"{where}: primary key is {table.primary_key}, the model says {primary}")
    for together in opts.unique_together:
        columns = tuple(opts.get_field(name).column for name in together)  # type: ignore[union-attr]
        if columns not in table.unique:
            problems.append(f"{where}: no unique constraint on {columns}")
    return problems


def _foreign_key_drift(
    where: str,
    model_field: models.Field,
    table: TableSchema,
) -> list[str]:
    column = model_field.column
    found = table.foreign_keys.get(column)
    if not model_field.is_relation or model_field.many_to_many:
        return [f"{where}: {column} references {found.table}, the model no model"] if found else []
    target = model_field.target_field  # type: ignore[attr-defined]
    wanted = ForeignKey(target.model._meta.db_table, target.column, "")
    if found is None:
        return [f"{where}: {column} has no foreign key to {wanted.table}"]
    problems = []
    if (found.table, found.column) != (wanted.table, wanted.column):
        problems.append(
            f"{where}: {column} references {found.table}({found.column}), "
            f"the model {wanted.table}({wanted.column})"
        )
    on_delete = model_field.remote_field.on_delete  # type: ignore[union-attr]
    if found.on_delete not in _ON_DELETE.get(on_delete, set()):
        problems.append(
            f"{where}: {column} is ON DELETE {_ON_DELETE_NAMES.get(found.on_delete, '?')}, "
            f"the model says {on_delete.__name__}"
        )
    return problems
