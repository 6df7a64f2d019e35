"""The README's commands load the example files the repository ships, as the README writes them."""

from __future__ import annotations

import csv
import re
import shlex
from datetime import date
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command

from marketdata.models import DailyBar, MinuteBar, Tick

ROOT = Path(__file__).resolve().parent.parent
COMMAND = re.compile(
    r"^\.venv/bin/python manage\.py"
    r" ((?:ingest_bars|ingest_ticks|ingest_listings|ingest_actions) examples/\S+.*)$"
)


def _file_closes(path: Path) -> dict[date, float]:
    with path.open() as file:
        return {
            date.fromisoformat(row["Date"]): float(row["Close"]) for row in csv.DictReader(file)
        }


def _readme_commands() -> list[list[str]]:
    lines = (ROOT / "README.md").read_text().splitlines()
    return [shlex.split(match[1]) for line in lines if (match := COMMAND.match(line))]


def test_the_readme_loads_only_files_the_repository_ships():
    commands = _readme_commands()
    assert len(commands) == 5
    for args in commands:
        assert (ROOT / args[1]).is_file(), f"the README loads {args[1]}, which is not shipped"
    assert "../shared" not in (ROOT / "README.md").read_text()


@pytest.mark.django_db(transaction=True)
def test_every_example_command_of_the_readme_loads_its_file(monkeypatch):
    monkeypatch.chdir(ROOT)
    for name, *args in _readme_commands():
        call_command(name, *args, stdout=StringIO(), stderr=StringIO())
    assert DailyBar.objects.filter(instrument__symbol="ACME").count() == 20
    # Yahoo's Close is split-adjusted: stored as traded, it reads back so split-adjusted.
    closes = _file_closes(ROOT / "examples" / "daily-bars.csv")
    acme = DailyBar.objects.for_symbol("ACME", on=date(2024, 3, 29))
    split = {bar.ts.date(): bar.close for bar in acme.adjusted("split")}
    raw = {bar.ts.date(): bar.close for bar in acme}
    assert split == pytest.approx(closes, rel=1e-12)
    assert raw == pytest.approx(
        {day: close * (2 if day < date(2024, 3, 18) else 1) for day, close in closes.items()},
        rel=1e-12,
    )
    assert MinuteBar.objects.filter(instrument__symbol="EURUSD").count() == 30
    assert Tick.objects.filter(instrument__symbol="BTCUSDT").count() == 25
