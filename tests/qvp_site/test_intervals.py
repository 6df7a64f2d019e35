from datetime import UTC, datetime, timedelta

import pytest

from qvp_site.db.intervals import parse_interval


def at(*args):
    return datetime(*args, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "months", "fixed"),
    [
        ("7 days", 0, timedelta(days=7)),
        ("1h", 0, timedelta(hours=1)),
        ("15 minutes", 0, timedelta(minutes=15)),
        ("1m", 0, timedelta(minutes=1)),
        ("1w", 0, timedelta(weeks=1)),
        ("2 hours 30 minutes", 0, timedelta(minutes=150)),
        ("1mo", 1, timedelta(0)),
        ("3 months", 3, timedelta(0)),
        ("1 year", 12, timedelta(0)),
    ],
)
def test_parse(text, months, fixed):
    width = parse_interval(text)
    assert (width.months, width.fixed) == (months, fixed)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "is not of the form"),
        ("soon", "is not of the form"),
        ("1 month 2 days", "mixes calendar months"),
        ("0 days", "must be positive"),
        ("5 parsecs", "unknown unit 'parsec'"),
    ],
)
def test_parse_refuses(text, message):
    with pytest.raises(ValueError, match=message):
        parse_interval(text)


@pytest.mark.parametrize(
    ("width", "moment", "expected"),
    [
        # Weeks start on Monday, as time_bucket's do: 2024-05-17 is a Friday.
        ("1w", at(2024, 5, 17, 13, 47), at(2024, 5, 13)),
        ("1w", at(2024, 5, 13, 0, 0), at(2024, 5, 13)),
        ("1h", at(2024, 5, 17, 13, 47), at(2024, 5, 17, 13)),
        ("15 minutes", at(2024, 5, 17, 13, 47), at(2024, 5, 17, 13, 45)),
        ("1d", at(1999, 12, 31, 23, 59), at(1999, 12, 31)),
        ("1mo", at(2024, 2, 29, 23), at(2024, 2, 1)),
        ("3 months", at(2024, 5, 17), at(2024, 4, 1)),
        ("1 year", at(2024, 5, 17), at(2024, 1, 1)),
        ("3 months", at(1999, 11, 30), at(1999, 10, 1)),
    ],
)
def test_floor(width, moment, expected):
    assert parse_interval(width).floor(moment) == expected


def test_adding_a_month_to_the_31st_clamps_like_postgresql():
    assert parse_interval("1mo").add(at(2024, 1, 31)) == at(2024, 2, 29)
    assert parse_interval("1mo").add(at(2024, 3, 31), -1) == at(2024, 2, 29)


def test_sql_literal_is_readable():
    assert parse_interval("7 days").sql() == "7 days"
    assert parse_interval("1h").sql() == "1 hours"
    assert parse_interval("90s").sql() == "90 seconds"
    assert parse_interval("1 year").sql() == "12 months"
