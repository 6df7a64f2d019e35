"""The SQL files the risk migrations install (risk/sql/), read when a migration runs."""

from pathlib import Path

SQL_DIR = Path(__file__).resolve().parent / "sql"


def read(name: str) -> str:
    return (SQL_DIR / name).read_text()
