"""One reading of a command-line time (``qvp_site.times``): every command's time option
refuses a bad value naming the option, and a date, a naive time and a zoned time mean what
the help says (a date or time without a zone is UTC)."""

from __future__ import annotations

from datetime import UTC, datetime
from io import StringIO
from types import SimpleNamespace
from typing import Any

import pytest
from django.core.management import call_command, get_commands, load_command_class
from django.core.management.base import CommandError

from qvp_site.times import TIME_HELP
from signals import fusion

# (command, its time option, the other arguments it needs to get as far as that option)
TIME_OPTIONS = [
    ("compute_risk", "--as-of", []),
    ("compute_risk", "--known-at", []),
    ("detect_anomalies", "--as-of", ["--symbol", "AAPL"]),
    ("fuse_signals", "--as-of", []),
    ("signal_performance", "--as-of", ["--all"]),
    ("signal_performance", "--known-at", ["--all"]),
    ("delete_market_data", "--start", ["--symbol", "AAPL", "--kind", "1m", "--end", "2024-02-01"]),
    ("delete_market_data", "--end", ["--symbol", "AAPL", "--kind", "1m", "--start", "2024-01-01"]),
    ("snapshot_portfolios", "--as-of", []),
    ("snapshot_portfolios", "--known-at", []),
    ("build_embeddings", "--since", []),
    ("build_patterns", "--since", []),
    ("rerun_backtest", "--known-at", ["1"]),
    ("archive", "--before", ["--table", "marketdata_minutebar"]),
]


@pytest.mark.parametrize(("command", "option", "others"), TIME_OPTIONS)
def test_a_bad_time_stops_the_command_naming_its_option(
    command: str, option: str, others: list[str]
) -> None:
    with pytest.raises(CommandError, match=rf"argument {option}: 'last tuesday' is not an ISO"):
        call_command(command, *others, option, "last tuesday", stdout=StringIO())


def test_a_bad_cover_names_the_option() -> None:
    with pytest.raises(CommandError, match=r"argument --cover: '2024-13-01' is not an ISO"):
        call_command("maintain", "--cover", "2024-13-01", "2024-12-31", stdout=StringIO())


@pytest.mark.parametrize(("command", "option", "others"), TIME_OPTIONS)
def test_the_help_says_what_a_time_without_a_zone_means(
    command: str, option: str, others: list[str]
) -> None:
    parser = load_command_class(get_commands()[command], command).create_parser("manage", command)
    (action,) = [a for a in parser._actions if option in a.option_strings]
    assert TIME_HELP in action.help


@pytest.mark.parametrize(
    ("given", "meant"),
    [
        ("2024-05-13", datetime(2024, 5, 13, tzinfo=UTC)),
        ("2024-05-13T09:30", datetime(2024, 5, 13, 9, 30, tzinfo=UTC)),
        ("2024-05-13T09:30:00+02:00", datetime(2024, 5, 13, 7, 30, tzinfo=UTC)),
        ("2024-05-13T09:30Z", datetime(2024, 5, 13, 9, 30, tzinfo=UTC)),
    ],
)
def test_a_time_means_what_the_help_says(
    db: Any, monkeypatch: pytest.MonkeyPatch, given: str, meant: datetime
) -> None:
    seen: list[datetime] = []

    def fuse(as_of: datetime, ids: list[int] | None) -> SimpleNamespace:
        seen.append(as_of)
        return SimpleNamespace(fused=[], as_of=as_of)

    monkeypatch.setattr(fusion, "fuse", fuse)
    call_command("fuse_signals", "--as-of", given, stdout=StringIO())
    assert seen == [meant]
    assert seen[0].utcoffset() is not None
