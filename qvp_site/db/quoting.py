"""Quoting of SQL names and literals for DDL, where bind parameters are not allowed."""

from psycopg import sql


def ident(name: str) -> str:
    """A quoted SQL identifier: ``ident('a"b')`` is ``"a""b"``."""
    return sql.Identifier(name).as_string(None)


def literal(value: object) -> str:
    """A quoted SQL literal, for statements such as CREATE TRIGGER that take no parameters."""
    return sql.Literal(value).as_string(None)
